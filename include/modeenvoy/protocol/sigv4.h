// include/modeenvoy/protocol/sigv4.h: AWS Signature Version 4 for request headers (Bedrock
// and any other non-S3 AWS service), as botocore's SigV4Auth computes it. A pure function:
// the time is given, nothing is read from the clock or the environment.
//   modeenvoy::SigV4Request req{.method = "POST",
//       .url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m%3A0/converse",
//       .headers = &headers, .body = body};
//   auto signed_ = modeenvoy::SignSigV4(req, credentials, {.region = "us-east-1",
//                                       .service = "bedrock", .time = clock->Now()});
//   if (!signed_.ok()) return signed_.status();
//   for (auto& h : signed_->headers) headers.push_back(h);  // x-amz-date, token, authorization
#ifndef MODEENVOY_PROTOCOL_SIGV4_H_
#define MODEENVOY_PROTOCOL_SIGV4_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "modeenvoy/export.h"

namespace modeenvoy {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary credentials only; empty otherwise
};

struct SigV4Request {
  std::string_view method = "POST";
  // Absolute URL as it goes on the wire: scheme://host[:port]/path[?query], the path
  // percent-encoded as sent (a Bedrock model id "a:b/c" is "/model/a%3Ab%2Fc/converse").
  std::string_view url;
  // The request's headers, any case, in any order. Headers botocore never signs
  // (user-agent, connection, expect, keep-alive, proxy-*, te, trailer, transfer-encoding,
  // upgrade, x-amzn-trace-id) and stale authorization / x-amz-date /
  // x-amz-security-token values are left out; "host" is taken from the URL when absent.
  // May be null (no headers).
  const std::vector<std::pair<std::string, std::string>>* headers = nullptr;
  std::string_view body;
};

struct SigV4Scope {
  std::string_view region;   // e.g. "us-east-1"
  std::string_view service;  // e.g. "bedrock"
  absl::Time time;           // the signing time; whole seconds are used (UTC)
};

struct SigV4Signature {
  // The headers to add to the request, lower-case names, in this order: x-amz-date,
  // x-amz-security-token (when the credentials have a session token), authorization.
  std::vector<std::pair<std::string, std::string>> headers;
  // The intermediate steps, for tests and debugging.
  std::string canonical_request;
  std::string string_to_sign;
};

// Signs `request` the way botocore's SigV4Auth does for a non-S3 service: the canonical
// path is the URL path with dot segments and empty segments removed, then percent-encoded
// once more (every byte but A-Z a-z 0-9 - _ . ~ and '/'); the query's pairs are sorted and
// percent-encoded (an already encoded query is kept as is); header values are trimmed with
// inner runs of whitespace folded to one space, repeated names joined with ','; the payload
// hash is SHA-256 of the body (or the request's own x-amz-content-sha256 header), and no
// x-amz-content-sha256 header is added (botocore adds none for bedrock).
// Errors: kInvalidArgument when the URL has no scheme or host, or a credential, region or
// service is empty; kInternal if the crypto library fails.
MODEENVOY_EXPORT absl::StatusOr<SigV4Signature> SignSigV4(const SigV4Request& request,
                                                         const AwsCredentials& credentials,
                                                         const SigV4Scope& scope);

}  // namespace modeenvoy

#endif  // MODEENVOY_PROTOCOL_SIGV4_H_
