// tests/gateway/http_test.cc: the header helpers every hop of the project shares.
#include "modeenvoy/gateway/http.h"

#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeenvoy {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

TEST(HttpHeadersTest, HopByHopNamesAreCaseInsensitive) {
  for (const char* name : {"Connection", "KEEP-ALIVE", "proxy-connection", "Transfer-Encoding",
                           "TE", "Trailer", "Upgrade", "Proxy-Authenticate",
                           "Proxy-Authorization", "Content-Length"}) {
    EXPECT_TRUE(IsHopByHopHeader(name)) << name;
  }
  for (const char* name : {"content-type", "x-request-id", "retry-after", "tee", "date"}) {
    EXPECT_FALSE(IsHopByHopHeader(name)) << name;
  }
}

TEST(HttpHeadersTest, StripRemovesHeadersNamedInConnection) {
  HttpHeaders headers = {{"Content-Type", "application/json"},
                         {"Connection", "close, X-Trace ,x-other"},
                         {"x-trace", "1"},
                         {"X-Other", "2"},
                         {"Keep-Alive", "timeout=5"},
                         {"x-kept", "3"}};
  StripHopByHopHeaders(&headers);
  EXPECT_THAT(headers, ElementsAre(Pair("Content-Type", "application/json"),
                                   Pair("x-kept", "3")));
}

TEST(HttpHeadersTest, HeaderValidity) {
  EXPECT_TRUE(IsValidHeaderName("x-api-key"));
  EXPECT_FALSE(IsValidHeaderName(""));
  EXPECT_FALSE(IsValidHeaderName("bad name"));
  EXPECT_FALSE(IsValidHeaderName("x:y"));
  EXPECT_TRUE(IsValidHeaderValue("Bearer abc\tdef"));
  EXPECT_FALSE(IsValidHeaderValue("a\r\nSet-Cookie: x=1"));
  EXPECT_FALSE(IsValidHeaderValue("a\nb"));
  EXPECT_FALSE(IsValidHeaderValue(std::string_view("a\0b", 3)));
}

TEST(HttpHeadersTest, HeaderValidityForEveryByte) {
  const std::string_view tchar_symbols = "!#$%&'*+-.^_`|~";
  for (int i = 0; i < 256; ++i) {
    const char c = static_cast<char>(i);
    const bool token = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c >= '0' && c <= '9') || tchar_symbols.find(c) != std::string_view::npos;
    const std::string name = std::string("x-") + c + "-y";
    EXPECT_EQ(IsValidHeaderName(name), token) << i;
    const std::string value = std::string("a value ") + c + " of some length, past 16 bytes";
    EXPECT_EQ(IsValidHeaderValue(value), c != '\r' && c != '\n' && c != '\0') << i;
  }
  EXPECT_TRUE(IsValidHeaderValue(""));
}

TEST(HttpHeadersTest, StripKeepsNothingConnectionNamesEvenWhenAlsoHopByHop) {
  HttpHeaders headers = {{"connection", "Keep-Alive, TE, x-hop"},
                         {"te", "trailers"},
                         {"X-Hop", "1"},
                         {"keep-alive", "timeout=5"},
                         {"x-end", "2"}};
  StripHopByHopHeaders(&headers);
  EXPECT_THAT(headers, ElementsAre(Pair("x-end", "2")));
}

}  // namespace
}  // namespace modeenvoy
