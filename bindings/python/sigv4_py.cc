// bindings/python/sigv4_py.cc: the SigV4 signer (protocol/sigv4.h), exposed only so that
// tests/python/test_sigv4_botocore.py can compare it with botocore's SigV4Auth.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "bindings/python/register.h"
#include "bindings/python/status_py.h"
#include "modeenvoy/protocol/sigv4.h"

namespace py = pybind11;

void RegisterSigV4(pybind11::module_& m) {
  m.def(
      "_sign_sigv4",
      [](const std::string& method, const std::string& url,
         const std::vector<std::pair<std::string, std::string>>& headers, py::bytes body,
         const std::string& access_key_id, const std::string& secret_access_key,
         const std::string& session_token, const std::string& region,
         const std::string& service, int64_t unix_seconds) {
        const std::string body_bytes = body;
        const modeenvoy::AwsCredentials credentials{access_key_id, secret_access_key,
                                                    session_token};
        absl::StatusOr<modeenvoy::SigV4Signature> s = modeenvoy::SignSigV4(
            {.method = method, .url = url, .headers = &headers, .body = body_bytes},
            credentials,
            {.region = region, .service = service, .time = absl::FromUnixSeconds(unix_seconds)});
        modeenvoy::SigV4Signature out = modeenvoy::python::ValueOrThrow(std::move(s));
        return py::make_tuple(out.headers, out.canonical_request, out.string_to_sign);
      },
      py::arg("method"), py::arg("url"), py::arg("headers"), py::arg("body"),
      py::arg("access_key_id"), py::arg("secret_access_key"), py::arg("session_token"),
      py::arg("region"), py::arg("service"), py::arg("unix_seconds"),
      "Internal (tests): SigV4 headers to add, canonical request and string to sign.");
}
