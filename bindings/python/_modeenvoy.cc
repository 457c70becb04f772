// bindings/python/_modeenvoy.cc: the private extension module. Only shims live in C++;
// the Pythonic API is bindings/python/modeenvoy/*.py.
#include <pybind11/pybind11.h>

#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "bindings/python/register.h"
#include "bindings/python/status_py.h"
#include "modeenvoy/protocol/error.h"

namespace py = pybind11;

namespace modeenvoy::python {
namespace {

py::object& ErrorClass() {
  // Leaked on purpose: destroying a Python object at process exit, after the interpreter
  // finalized, would crash.
  static py::object* error_class = new py::object();
  return *error_class;
}

std::string CodeName(absl::StatusCode code) {
  // absl::StatusCodeToString gives "INVALID_ARGUMENT" style names; keep them.
  return absl::StatusCodeToString(code);
}

}  // namespace

void SetErrorClass(py::object error_class) { ErrorClass() = std::move(error_class); }

namespace {

[[noreturn]] void Raise(const absl::Status& status, py::object partial_output) {
  py::object param = py::none();
  if (auto p = ErrorParam(status)) param = py::str(*p);
  py::object error = ErrorClass()(py::str(std::string(status.message())),
                                  py::arg("code") = CodeName(status.code()),
                                  py::arg("status_code") = HttpStatusForStatus(status),
                                  py::arg("param") = param,
                                  py::arg("partial_output") = std::move(partial_output));
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error.ptr())), error.ptr());
  throw py::error_already_set();
}

}  // namespace

void ThrowStatus(const absl::Status& status) { Raise(status, py::bytes()); }

void ThrowStatus(const absl::Status& status, std::string_view partial_output) {
  Raise(status, py::bytes(partial_output.data(), partial_output.size()));
}

}  // namespace modeenvoy::python

PYBIND11_MODULE(_modeenvoy, m) {
  m.doc() = "modeenvoy native core (private; import modeenvoy instead)";
  m.def("_set_error_class", &modeenvoy::python::SetErrorClass,
        "Internal: the exception class raised for every library error.");
  RegisterProtocol(m);
  RegisterDialects(m);
  RegisterSigV4(m);
  RegisterTokenizer(m);
  RegisterContext(m);
}
