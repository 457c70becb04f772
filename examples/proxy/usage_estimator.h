// examples/proxy/usage_estimator.h: the proxy's UsageEstimator (gateway/usage.h) on the
// tokenizer, for streams that end without reporting usage.
#ifndef MODEENVOY_EXAMPLES_PROXY_USAGE_ESTIMATOR_H_
#define MODEENVOY_EXAMPLES_PROXY_USAGE_ESTIMATOR_H_

#include <memory>

#include "modeenvoy/gateway/usage.h"

namespace modeenvoy::proxy {

// Counts with tiktoken's encodings (o200k_base and cl100k_base, loaded once here, so no rank
// file is read on a loop thread): the model's encoding when it has one of these, else
// o200k_base; the prompt by OpenAI's chat rules (CountChatTokens). method() "tokenizer".
// When no rank file can be loaded, returns WordCountUsageEstimator() (method "word_count").
std::shared_ptr<const UsageEstimator> NewTokenizerUsageEstimator();

}  // namespace modeenvoy::proxy

#endif  // MODEENVOY_EXAMPLES_PROXY_USAGE_ESTIMATOR_H_
