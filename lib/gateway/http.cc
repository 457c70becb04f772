// lib/gateway/http.cc: helpers declared in include/modeenvoy/gateway/http.h.
#include "modeenvoy/gateway/http.h"

#include <algorithm>
#include <array>
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
  // Runs for every forwarded header, several times: one comparison at most per name.
  auto is = [name](absl::string_view h) {
    return absl::EqualsIgnoreCase(core_internal::ToAbsl(name), h);
  };
  switch (name.size()) {
    case 2: return is("te");
    case 7: return is("trailer") || is("upgrade");
    case 10: return is("connection") || is("keep-alive");
    case 14: return is("content-length");
    case 16: return is("proxy-connection");
    case 17: return is("transfer-encoding");
    case 18: return is("proxy-authenticate");
    case 19: return is("proxy-authorization");
    default: return false;
  }
}

void StripHopByHopHeaders(HttpHeaders* headers) {
  std::vector<std::string> named;  // lowercased names listed in Connection headers
  for (const auto& [key, value] : *headers) {
    if (!absl::EqualsIgnoreCase(core_internal::ToAbsl(key), "connection")) continue;
    for (absl::string_view token : absl::StrSplit(core_internal::ToAbsl(value), ',')) {
      token = absl::StripAsciiWhitespace(token);
      // "keep-alive" (what servers send) goes anyway: no copy for it.
      if (!token.empty() && !IsHopByHopHeader(core_internal::ToStd(token))) {
        named.push_back(absl::AsciiStrToLower(token));
      }
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

namespace {

// RFC 9110 5.6.2 tchar, by byte: the characters a header name may hold.
constexpr std::array<bool, 256> kTokenChars = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

}  // namespace

// Both run for every header of every response, twice (engine and host). Header names and
// values are short and almost always valid: no early exit, so the loops stay branch-free
// (and the value scan vectorizes).
bool IsValidHeaderName(std::string_view name) {
  bool ok = !name.empty();
  for (char c : name) ok &= kTokenChars[static_cast<unsigned char>(c)];
  return ok;
}

bool IsValidHeaderValue(std::string_view value) {
  bool bad = false;
  for (char c : value) bad |= (c == '\r') | (c == '\n') | (c == '\0');
  return !bad;
}

}  // namespace modeenvoy
