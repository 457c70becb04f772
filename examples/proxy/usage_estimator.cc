// examples/proxy/usage_estimator.cc: usage estimated with the tokenizer.
#include "examples/proxy/usage_estimator.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/tokenizer/chat_tokens.h"
#include "modeenvoy/tokenizer/encoding.h"
#include "modeenvoy/tokenizer/model.h"

namespace modeenvoy::proxy {
namespace {

class TokenizerEstimator final : public UsageEstimator {
 public:
  TokenizerEstimator(std::shared_ptr<const Encoding> o200k, std::shared_ptr<const Encoding> cl100k)
      : o200k_(std::move(o200k)), cl100k_(std::move(cl100k)) {}

  std::string_view method() const override { return "tokenizer"; }
  int64_t PromptTokens(const ChatRequest& chat, std::string_view model) const override {
    ChatTokenOptions options;
    options.model = std::string(model);
    return CountChatTokens(For(model), chat, options).prompt_tokens;
  }
  int64_t CompletionTokens(std::string_view text, std::string_view model) const override {
    return static_cast<int64_t>(For(model).CountOrdinary(text));
  }

 private:
  const Encoding& For(std::string_view model) const {
    absl::StatusOr<std::string> name = EncodingNameForModel(model);
    if (name.ok() && *name == "cl100k_base" && cl100k_ != nullptr) return *cl100k_;
    return *o200k_;
  }

  const std::shared_ptr<const Encoding> o200k_;
  const std::shared_ptr<const Encoding> cl100k_;  // may be null
};

}  // namespace

std::shared_ptr<const UsageEstimator> NewTokenizerUsageEstimator() {
  absl::StatusOr<std::shared_ptr<const Encoding>> o200k = GetEncoding("o200k_base");
  if (!o200k.ok()) return WordCountUsageEstimator();
  absl::StatusOr<std::shared_ptr<const Encoding>> cl100k = GetEncoding("cl100k_base");
  return std::make_shared<TokenizerEstimator>(*std::move(o200k),
                                              cl100k.ok() ? *std::move(cl100k) : nullptr);
}

}  // namespace modeenvoy::proxy
