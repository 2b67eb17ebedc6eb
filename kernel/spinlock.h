/*
 * The host's one lock primitive: a ticket spinlock (FIFO, so a CPU that asks
 * first gets the lock first). The host runs with interrupts off and no
 * interrupt or NMI handler takes a lock, so there is no irqsave variant. The
 * rules for using it (what each lock protects, the order, nothing held in
 * guest mode) are in docs/architecture.md "Execution model". Any CPU, host
 * context.
 */
#ifndef AMBER_SPINLOCK_H
#define AMBER_SPINLOCK_H

#include "kernel/types.h"

typedef struct {
	u32 next;  /* the ticket the next CPU to ask draws */
	u32 owner; /* the ticket that holds the lock */
} spinlock_t;

#define SPINLOCK_INIT \
	{ \
		0, 0 \
	}

static inline void spin_lock(spinlock_t *l)
{
	u32 t = __atomic_fetch_add(&l->next, 1, __ATOMIC_RELAXED);

	while (__atomic_load_n(&l->owner, __ATOMIC_ACQUIRE) != t)
		__asm__ volatile("pause" ::: "memory");
}

/* Takes the lock only if no CPU holds or waits for it. */
static inline bool spin_trylock(spinlock_t *l)
{
	u32 o = __atomic_load_n(&l->owner, __ATOMIC_RELAXED);
	u32 want = o;

	return __atomic_compare_exchange_n(&l->next, &want, o + 1, false, __ATOMIC_ACQUIRE,
					   __ATOMIC_RELAXED);
}

static inline void spin_unlock(spinlock_t *l)
{
	__atomic_store_n(&l->owner, l->owner + 1, __ATOMIC_RELEASE);
}

static inline bool spin_is_locked(spinlock_t *l)
{
	return __atomic_load_n(&l->owner, __ATOMIC_RELAXED) !=
	       __atomic_load_n(&l->next, __ATOMIC_RELAXED);
}

/* Panic only, once every other CPU is stopped: frees a lock whatever its
 * state, so the panicking CPU can print even if a stopped CPU held it. */
static inline void spin_lock_bust(spinlock_t *l)
{
	__atomic_store_n(&l->owner, __atomic_load_n(&l->next, __ATOMIC_RELAXED), __ATOMIC_RELEASE);
}

#endif
