# Demo guests linked into the Amber image (filled in by the VMM work).
GUEST_BLOBS_OBJ :=
