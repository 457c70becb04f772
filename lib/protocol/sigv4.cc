// lib/protocol/sigv4.cc: AWS Signature Version 4 (header signing), matching botocore's
// SigV4Auth (botocore/auth.py) byte for byte, which tests/python/test_sigv4_botocore.py
// checks. SHA-256 and HMAC-SHA256 come from OpenSSL's libcrypto (docs/architecture.md).
#include "modeenvoy/protocol/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "lib/core/status_macros.h"

namespace modeenvoy {
namespace {

using core_internal::ToAbsl;

constexpr char kHex[] = "0123456789abcdef";
constexpr char kHexUpper[] = "0123456789ABCDEF";

std::string Hex(const unsigned char* bytes, size_t n) {
  std::string out(2 * n, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 0xF];
  }
  return out;
}

absl::StatusOr<std::string> Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("sigv4: sha-256 failed");
  }
  return Hex(digest, len);
}

// HMAC-SHA256(key, data), raw 32 bytes.
absl::StatusOr<std::string> Hmac(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac,
           &len) == nullptr) {
    return absl::InternalError("sigv4: hmac-sha256 failed");
  }
  return std::string(reinterpret_cast<const char*>(mac), len);
}

bool Unreserved(unsigned char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

// Python's urllib.parse.quote(s, safe=...) on UTF-8 bytes: uppercase %XX for every byte
// that is neither unreserved nor in `safe`.
void AppendQuoted(std::string_view s, std::string_view safe, std::string* out) {
  for (unsigned char c : s) {
    if (Unreserved(c) || safe.find(static_cast<char>(c)) != std::string_view::npos) {
      out->push_back(static_cast<char>(c));
    } else {
      out->push_back('%');
      out->push_back(kHexUpper[c >> 4]);
      out->push_back(kHexUpper[c & 0xF]);
    }
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoded; a '%' not followed by two hex digits stays literal ('+' is a literal plus).
std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    int hi = 0;
    int lo = 0;
    if (s[i] == '%' && i + 2 < s.size() && (hi = HexValue(s[i + 1])) >= 0 &&
        (lo = HexValue(s[i + 2])) >= 0) {
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// botocore's normalize_url_path + quote(safe='/~'): RFC 3986 dot-segment removal that also
// drops empty segments, then one more round of percent-encoding.
std::string CanonicalPath(std::string_view path) {
  if (path.empty()) return "/";
  std::vector<std::string_view> segments;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view seg = path.substr(start, slash - start);
    if (seg == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!seg.empty() && seg != ".") {
      segments.push_back(seg);
    }
    start = slash + 1;
  }
  std::string out;
  if (path.front() == '/') out.push_back('/');
  for (size_t i = 0; i < segments.size(); ++i) {
    if (i > 0) out.push_back('/');
    AppendQuoted(segments[i], "/~", &out);
  }
  if (path.back() == '/' && !segments.empty()) out.push_back('/');
  return out;
}

// Pairs split on '&' and the first '=', each side decoded and re-encoded with only the
// unreserved characters left bare, sorted by key then value.
std::string CanonicalQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> pairs;
  size_t start = 0;
  while (start < query.size()) {
    size_t amp = query.find('&', start);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view pair = query.substr(start, amp - start);
    start = amp + 1;
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? "" : pair.substr(eq + 1);
    std::string k;
    std::string v;
    AppendQuoted(PercentDecode(key), "", &k);
    AppendQuoted(PercentDecode(value), "", &v);
    pairs.emplace_back(std::move(k), std::move(v));
  }
  std::sort(pairs.begin(), pairs.end());
  std::string out;
  for (const auto& [k, v] : pairs) {
    if (!out.empty()) out.push_back('&');
    absl::StrAppend(&out, k, "=", v);
  }
  return out;
}

struct UrlParts {
  std::string scheme;
  std::string host;  // as botocore's _host_from_url: lower case, no userinfo, no default port
  std::string_view path;
  std::string_view query;
};

absl::StatusOr<UrlParts> SplitUrl(std::string_view url) {
  UrlParts parts;
  size_t colon = url.find("://");
  if (colon == std::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat("sigv4: url has no scheme: ", ToAbsl(url)));
  }
  parts.scheme = absl::AsciiStrToLower(ToAbsl(url.substr(0, colon)));
  std::string_view rest = url.substr(colon + 3);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  // host[:port], host possibly a bracketed IPv6 literal.
  std::string_view host = authority;
  std::string_view port;
  size_t port_colon = authority.rfind(':');
  if (port_colon != std::string_view::npos &&
      authority.find(']', port_colon) == std::string_view::npos) {
    host = authority.substr(0, port_colon);
    port = authority.substr(port_colon + 1);
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("sigv4: url has no host: ", ToAbsl(url)));
  }
  parts.host = absl::AsciiStrToLower(ToAbsl(host));
  const bool default_port = port.empty() || (parts.scheme == "https" && port == "443") ||
                            (parts.scheme == "http" && port == "80");
  if (!default_port) absl::StrAppend(&parts.host, ":", ToAbsl(port));
  size_t fragment = rest.find('#');
  if (fragment != std::string_view::npos) rest = rest.substr(0, fragment);
  size_t q = rest.find('?');
  parts.path = rest.substr(0, q);
  if (q != std::string_view::npos) parts.query = rest.substr(q + 1);
  return parts;
}

bool NeverSigned(std::string_view lower_name) {
  // botocore's SIGNED_HEADERS_BLACKLIST, plus the headers this signing step replaces.
  static constexpr std::string_view kSkip[] = {
      "connection",          "expect",          "keep-alive", "proxy-authenticate",
      "proxy-authorization", "te",              "trailer",    "transfer-encoding",
      "upgrade",             "user-agent",      "x-amzn-trace-id", "authorization",
      "x-amz-date",          "x-amz-security-token"};
  return std::find(std::begin(kSkip), std::end(kSkip), lower_name) != std::end(kSkip);
}

// Trimall: leading/trailing whitespace dropped, inner runs folded to one space.
void AppendTrimmed(std::string_view value, std::string* out) {
  constexpr std::string_view kSpace = " \t\n\r\v\f";
  bool first = true;
  size_t i = 0;
  while (i < value.size()) {
    size_t word = value.find_first_not_of(kSpace, i);
    if (word == std::string_view::npos) break;
    size_t end = value.find_first_of(kSpace, word);
    if (end == std::string_view::npos) end = value.size();
    if (!first) out->push_back(' ');
    out->append(value.substr(word, end - word));
    first = false;
    i = end;
  }
}

}  // namespace

absl::StatusOr<SigV4Signature> SignSigV4(const SigV4Request& request,
                                         const AwsCredentials& credentials,
                                         const SigV4Scope& scope) {
  if (credentials.access_key_id.empty() || credentials.secret_access_key.empty()) {
    return absl::InvalidArgumentError("sigv4: access key id and secret access key are required");
  }
  if (scope.region.empty() || scope.service.empty()) {
    return absl::InvalidArgumentError("sigv4: region and service are required");
  }
  absl::StatusOr<UrlParts> url = SplitUrl(request.url);
  if (!url.ok()) return url.status();

  const absl::TimeZone utc = absl::UTCTimeZone();
  const std::string amz_date = absl::FormatTime("%Y%m%dT%H%M%SZ", scope.time, utc);
  const std::string date = amz_date.substr(0, 8);

  // Lower-cased name -> values in order; then the ones this step adds.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string payload_hash;
  bool has_host = false;
  if (request.headers != nullptr) {
    for (const auto& [name, value] : *request.headers) {
      std::string lower = absl::AsciiStrToLower(name);
      if (lower == "x-amz-content-sha256" && payload_hash.empty()) payload_hash = value;
      if (NeverSigned(lower)) continue;
      has_host = has_host || lower == "host";
      headers.emplace_back(std::move(lower), value);
    }
  }
  if (!has_host) headers.emplace_back("host", url->host);
  headers.emplace_back("x-amz-date", amz_date);
  if (!credentials.session_token.empty()) {
    headers.emplace_back("x-amz-security-token", credentials.session_token);
  }
  std::stable_sort(headers.begin(), headers.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  std::string canonical_headers;
  std::string signed_headers;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (i > 0 && headers[i].first == headers[i - 1].first) {
      canonical_headers.push_back(',');
    } else {
      if (i > 0) {
        canonical_headers.push_back('\n');
        signed_headers.push_back(';');
      }
      absl::StrAppend(&canonical_headers, headers[i].first, ":");
      signed_headers.append(headers[i].first);
    }
    AppendTrimmed(headers[i].second, &canonical_headers);
  }

  if (payload_hash.empty()) {
    absl::StatusOr<std::string> hash = Sha256Hex(request.body);
    if (!hash.ok()) return hash.status();
    payload_hash = *std::move(hash);
  }

  SigV4Signature out;
  out.canonical_request =
      absl::StrCat(absl::AsciiStrToUpper(ToAbsl(request.method)), "\n", CanonicalPath(url->path), "\n",
                   CanonicalQuery(url->query), "\n", canonical_headers, "\n\n", signed_headers,
                   "\n", payload_hash);
  const std::string credential_scope =
      absl::StrCat(date, "/", ToAbsl(scope.region), "/", ToAbsl(scope.service), "/aws4_request");
  absl::StatusOr<std::string> request_hash = Sha256Hex(out.canonical_request);
  if (!request_hash.ok()) return request_hash.status();
  out.string_to_sign =
      absl::StrCat("AWS4-HMAC-SHA256\n", amz_date, "\n", credential_scope, "\n", *request_hash);

  std::string key = absl::StrCat("AWS4", credentials.secret_access_key);
  for (std::string_view part : {std::string_view(date), scope.region, scope.service,
                                std::string_view("aws4_request")}) {
    absl::StatusOr<std::string> next = Hmac(key, part);
    if (!next.ok()) return next.status();
    key = *std::move(next);
  }
  absl::StatusOr<std::string> signature = Hmac(key, out.string_to_sign);
  if (!signature.ok()) return signature.status();

  out.headers.emplace_back("x-amz-date", amz_date);
  if (!credentials.session_token.empty()) {
    out.headers.emplace_back("x-amz-security-token", credentials.session_token);
  }
  out.headers.emplace_back(
      "authorization",
      absl::StrCat("AWS4-HMAC-SHA256 Credential=", credentials.access_key_id, "/",
                   credential_scope, ", SignedHeaders=", signed_headers, ", Signature=",
                   Hex(reinterpret_cast<const unsigned char*>(signature->data()),
                       signature->size())));
  return out;
}

}  // namespace modeenvoy
