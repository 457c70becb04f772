// tests/gateway/endpoint_table_test.cc: EndpointTable::Match, literal and parameter patterns.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/filter.h"

namespace modeenvoy {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

EndpointSpec Spec(std::string kind, std::string method, std::string pattern) {
  EndpointSpec spec;
  spec.kind = std::move(kind);
  spec.method = std::move(method);
  spec.pattern = std::move(pattern);
  return spec;
}

EndpointTable Table() {
  return EndpointTable({Spec("by_id", "GET", "/v1/models/{id}"),
                        Spec("models", "GET", "/v1/models"),
                        Spec("special", "GET", "/v1/models/special"),
                        Spec("chat", "POST", "/v1/chat/completions"),
                        Spec("chat_again", "POST", "/v1/chat/completions"),
                        Spec("any_chat", "POST", "/v1/{what}/completions"),
                        Spec("put_chat", "PUT", "/v1/chat/completions")});
}

const char* Kind(const EndpointMatch& m) { return m.endpoint ? m.endpoint->kind.c_str() : ""; }

TEST(EndpointTableTest, ExactLiteralPatternIsTheFirstSuch) {
  EndpointTable table = Table();
  EndpointMatch m = table.Match("POST", "/v1/chat/completions");
  EXPECT_STREQ(Kind(m), "chat");
  EXPECT_THAT(m.params, IsEmpty());
  EXPECT_THAT(m.allowed_methods, IsEmpty());
  EXPECT_STREQ(Kind(table.Match("POST", "/v1/chat/completions?x=1#f")), "chat");
  EXPECT_STREQ(Kind(table.Match("GET", "/v1/models")), "models");
}

TEST(EndpointTableTest, LiteralSegmentsWinOverParameters) {
  EndpointTable table = Table();
  EXPECT_STREQ(Kind(table.Match("GET", "/v1/models/special")), "special");
  EndpointMatch m = table.Match("GET", "/v1/models/gpt-4o?full=1");
  EXPECT_STREQ(Kind(m), "by_id");
  EXPECT_THAT(m.params, ElementsAre(Pair("id", "gpt-4o")));
  m = table.Match("POST", "/v1/text/completions");
  EXPECT_STREQ(Kind(m), "any_chat");
  EXPECT_THAT(m.params, ElementsAre(Pair("what", "text")));
}

TEST(EndpointTableTest, WrongMethodListsTheOthersAndUnknownPathsMatchNothing) {
  EndpointTable table = Table();
  EndpointMatch m = table.Match("DELETE", "/v1/chat/completions");
  EXPECT_EQ(m.endpoint, nullptr);
  EXPECT_THAT(m.allowed_methods, ElementsAre("POST", "PUT"));
  m = table.Match("GET", "/v1/nothing");
  EXPECT_EQ(m.endpoint, nullptr);
  EXPECT_THAT(m.allowed_methods, IsEmpty());
  EXPECT_EQ(table.Match("GET", "v1/models").endpoint, nullptr);
  EXPECT_EQ(table.Match("GET", "").endpoint, nullptr);
  EXPECT_EQ(table.Match("GET", "/v1/models/").endpoint, nullptr);  // empty parameter
}

TEST(EndpointTableTest, PatternWithBracesIsNotTakenLiterally) {
  EndpointTable table({Spec("param", "GET", "/a/{b}")});
  EndpointMatch m = table.Match("GET", "/a/{b}");
  EXPECT_STREQ(Kind(m), "param");
  EXPECT_THAT(m.params, ElementsAre(Pair("b", "{b}")));
}

EndpointSpec WithHeader(EndpointSpec spec, std::string header) {
  spec.header = std::move(header);
  return spec;
}

TEST(EndpointTableTest, AHeaderConditionWinsOnlyWhenTheRequestCarriesTheHeader) {
  // Registered after the plain endpoint, as a component registers after the built-ins.
  EndpointTable table({Spec("models", "GET", "/v1/models"),
                       WithHeader(Spec("models.anthropic", "GET", "/v1/models"),
                                  "anthropic-version"),
                       Spec("by_id", "GET", "/v1/models/{id}"),
                       WithHeader(Spec("by_id.anthropic", "GET", "/v1/models/{id}"),
                                  "anthropic-version"),
                       WithHeader(Spec("only_tagged", "POST", "/v1/tagged"), "x-tag")});
  const HttpHeaders anthropic = {{"Anthropic-Version", "2023-06-01"}};
  const HttpHeaders other = {{"authorization", "Bearer k"}};
  EXPECT_STREQ(Kind(table.Match("GET", "/v1/models")), "models");
  EXPECT_STREQ(Kind(table.Match("GET", "/v1/models", &other)), "models");
  EXPECT_STREQ(Kind(table.Match("GET", "/v1/models", &anthropic)), "models.anthropic");
  EXPECT_STREQ(Kind(table.Match("GET", "/v1/models?limit=5", &anthropic)), "models.anthropic");
  EndpointMatch m = table.Match("GET", "/v1/models/claude", &anthropic);
  EXPECT_STREQ(Kind(m), "by_id.anthropic");
  EXPECT_THAT(m.params, ElementsAre(Pair("id", "claude")));
  EXPECT_STREQ(Kind(table.Match("GET", "/v1/models/claude", &other)), "by_id");
  // With no endpoint lacking the condition, a request without the header finds nothing.
  EXPECT_EQ(table.Match("POST", "/v1/tagged", &other).endpoint, nullptr);
  const HttpHeaders tagged = {{"X-TAG", ""}};
  EXPECT_STREQ(Kind(table.Match("POST", "/v1/tagged", &tagged)), "only_tagged");
}

TEST(EndpointRegistryTest, TheSamePatternWithAndWithoutAHeaderAreTwoEndpoints) {
  EndpointRegistry registry;
  EndpointSpec plain = Spec("models", "GET", "/v1/models");
  plain.local = MakeFilterFactory<Filter>();
  EndpointSpec tagged = WithHeader(plain, "anthropic-version");
  tagged.kind = "models.anthropic";
  ASSERT_TRUE(registry.Register(plain).ok());
  ASSERT_TRUE(registry.Register(tagged).ok());
  EXPECT_EQ(registry.Register(WithHeader(plain, "ANTHROPIC-VERSION")).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.Register(plain).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.Register(WithHeader(Spec("x", "GET", "/v1/x"), "bad header")).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace modeenvoy
