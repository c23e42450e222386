// Symbol visibility for the Portico core library.
//
// The library is built with -fvisibility=hidden so that only the declarations
// marked PORTICO_API form its binary interface; everything in portico::detail
// stays private to the shared object.
#pragma once

#if defined(_WIN32)
#define PORTICO_API
#else
#define PORTICO_API __attribute__((visibility("default")))
#endif
