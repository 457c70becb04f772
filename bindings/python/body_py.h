// bindings/python/body_py.h: request and response bodies crossing into C++ (str, bytes or
// a bytes-like object) and JSON text crossing back as str. Shared by the shims.
#ifndef MODEENVOY_BINDINGS_PYTHON_BODY_PY_H_
#define MODEENVOY_BINDINGS_PYTHON_BODY_PY_H_

#include <Python.h>
#include <pybind11/pybind11.h>

#include <string>
#include <string_view>

#include "bindings/python/status_py.h"
#include "modeenvoy/status.h"

namespace modeenvoy::python {

namespace py = pybind11;

// A read-only view of a str (its cached UTF-8), bytes, bytearray or other buffer. The
// view stays valid while `owner` lives; bytes-like objects other than bytes are copied.
class BodyView {
 public:
  explicit BodyView(const py::handle& data) {
    if (PyUnicode_Check(data.ptr())) {
      Py_ssize_t size = 0;
      const char* utf8 = PyUnicode_AsUTF8AndSize(data.ptr(), &size);
      if (utf8 == nullptr) {
        PyErr_Clear();
        ThrowStatus(InvalidFieldError("body", "str is not valid Unicode (lone surrogate)"));
      }
      view_ = std::string_view(utf8, static_cast<size_t>(size));
    } else if (PyBytes_Check(data.ptr())) {
      view_ = std::string_view(PyBytes_AS_STRING(data.ptr()),
                               static_cast<size_t>(PyBytes_GET_SIZE(data.ptr())));
    } else if (PyObject_CheckBuffer(data.ptr())) {
      // bytearray/memoryview may change under us once the GIL is released: copy.
      py::buffer_info info = py::reinterpret_borrow<py::buffer>(data).request();
      if (info.ndim != 1 || info.itemsize != 1) throw py::type_error("expected a 1-D byte buffer");
      copy_.assign(static_cast<const char*>(info.ptr), static_cast<size_t>(info.size));
      view_ = copy_;
    } else {
      throw py::type_error("expected str, bytes or a bytes-like object");
    }
  }
  std::string_view view() const { return view_; }

 private:
  std::string copy_;
  std::string_view view_;
};

inline py::str ToStr(const std::string& s) {
  // Our serializers only produce valid UTF-8.
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "strict");
  if (o == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

}  // namespace modeenvoy::python

#endif  // MODEENVOY_BINDINGS_PYTHON_BODY_PY_H_
