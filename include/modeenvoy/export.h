// include/modeenvoy/export.h: symbol visibility for the modeenvoy library.
//   class MODEENVOY_EXPORT Cache { ... };
// The library builds with hidden visibility; only declarations marked here are exported
// from a shared build. A static build (the default) makes the macro a no-op.
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
