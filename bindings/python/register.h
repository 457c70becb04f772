// bindings/python/register.h: one registration function per component shim.
#ifndef MODEENVOY_BINDINGS_PYTHON_REGISTER_H_
#define MODEENVOY_BINDINGS_PYTHON_REGISTER_H_

#include <pybind11/pybind11.h>

namespace modeenvoy::python {

// Stores the Python exception class that ThrowStatus raises. Called once at import.
void SetErrorClass(pybind11::object error_class);

}  // namespace modeenvoy::python

// Each is defined in bindings/python/<component>_py.cc.
void RegisterDialects(pybind11::module_& m);
void RegisterProtocol(pybind11::module_& m);
void RegisterSigV4(pybind11::module_& m);
void RegisterTokenizer(pybind11::module_& m);
void RegisterContext(pybind11::module_& m);

#endif  // MODEENVOY_BINDINGS_PYTHON_REGISTER_H_
