/* Amber's version; AMBER_GIT and AMBER_BUILD_DATE come from the Makefile. */
#ifndef AMBER_VERSION_H
#define AMBER_VERSION_H

#define AMBER_VERSION "0.1.0"
#ifndef AMBER_GIT
#define AMBER_GIT "unknown"
#endif
#ifndef AMBER_BUILD_DATE
#define AMBER_BUILD_DATE "unknown"
#endif

#endif
