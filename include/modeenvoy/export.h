// include/modeenvoy/export.h: symbol visibility for the modeenvoy libraries.
//   class MODEENVOY_EXPORT Cache { ... };
// Every component library (libmodeenvoy_core, _protocol, _tokenizer, _gateway) builds with
// hidden visibility and MODEENVOY_COMPILE_LIBRARY defined; only declarations marked here are
// exported from a shared build (BUILD_SHARED_LIBS, whose users get MODEENVOY_SHARED_LIBRARY
// from the CMake targets and pkg-config files). One macro serves every component: on ELF,
// default visibility on a declaration that another library defines changes nothing, so a
// component may include the others' headers. A private lib/core header whose functions other
// components call marks them too (they are part of the libraries' shared internal layer).
#ifndef MODEENVOY_EXPORT_H_
#define MODEENVOY_EXPORT_H_

#if defined(MODEENVOY_SHARED_LIBRARY)
#if defined(MODEENVOY_COMPILE_LIBRARY)
#define MODEENVOY_EXPORT __attribute__((visibility("default")))
#else
#define MODEENVOY_EXPORT
#endif
#else
#define MODEENVOY_EXPORT __attribute__((visibility("default")))
#endif

#endif  // MODEENVOY_EXPORT_H_
