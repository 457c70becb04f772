// lib/gateway/http.cc: helpers declared in include/modeenvoy/gateway/http.h.
#include "modeenvoy/gateway/http.h"

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "lib/core/status_macros.h"

namespace modeenvoy {

std::optional<std::string_view> FindHeader(const HttpHeaders& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(core_internal::ToAbsl(key), core_internal::ToAbsl(name))) {
      return std::string_view(value);
    }
  }
  return std::nullopt;
}

bool IsHopByHopHeader(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
      "upgrade", "proxy-authenticate", "proxy-authorization", "content-length"};
  for (std::string_view h : kNames) {
    // Runs for every forwarded header: compare only names of the same length.
    if (name.size() == h.size() &&
        absl::EqualsIgnoreCase(core_internal::ToAbsl(name), core_internal::ToAbsl(h))) {
      return true;
    }
  }
  return false;
}

void StripHopByHopHeaders(HttpHeaders* headers) {
  std::vector<std::string> named;  // lowercased names listed in Connection headers
  for (const auto& [key, value] : *headers) {
    if (!absl::EqualsIgnoreCase(core_internal::ToAbsl(key), "connection")) continue;
    for (absl::string_view token : absl::StrSplit(core_internal::ToAbsl(value), ',')) {
      token = absl::StripAsciiWhitespace(token);
      if (!token.empty()) named.push_back(absl::AsciiStrToLower(token));
    }
  }
  headers->erase(std::remove_if(headers->begin(), headers->end(),
                                [&](const std::pair<std::string, std::string>& h) {
                                  if (IsHopByHopHeader(h.first)) return true;
                                  for (const std::string& n : named) {
                                    if (absl::EqualsIgnoreCase(core_internal::ToAbsl(h.first), n)) {
                                      return true;
                                    }
                                  }
                                  return false;
                                }),
                 headers->end());
}

bool IsValidHeaderName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) return false;
  }
  return true;
}

bool IsValidHeaderValue(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

}  // namespace modeenvoy
