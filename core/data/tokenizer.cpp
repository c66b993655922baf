// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/data/tokenizer.h"

#include <xxhash.h>

#include <cstdlib>

#include "core/util/error.h"
#include "core/util/fs.h"

namespace mmlab::data {
namespace fs = std::filesystem;

std::vector<std::int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> ids(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string out;
  out.reserve(ids.size());
  for (std::int32_t id : ids) {
    if (id < 0 || id > kEot) {
      throw UserError("The token id " + std::to_string(id) +
                          " is outside the byte tokenizer's vocabulary of 257 ids.",
                      "Decode ids produced by the same tokenizer.");
    }
    if (id != kEot) out += static_cast<char>(id);
  }
  return out;
}

std::uint64_t ByteTokenizer::content_hash() const {
  static const char kId[] = "mmlab byte tokenizer, 256 bytes + eot 256";
  return XXH64(kId, sizeof(kId) - 1, 0);
}

fs::path default_gpt2_dir() {
  if (const char* env = std::getenv("MMLAB_GPT2_DIR"); env && *env) return fs::path(env);
  return data_home() / "tokenizers" / "gpt2";
}

std::unique_ptr<Tokenizer> load_tokenizer(const TokenizerSpec& spec) {
  if (spec.kind == "byte") return std::make_unique<ByteTokenizer>();
  if (spec.kind == "gpt2") {
    return Gpt2Tokenizer::from_dir(spec.path.empty() ? default_gpt2_dir() : spec.path);
  }
  if (spec.kind == "sentencepiece") {
    if (spec.path.empty()) {
      throw UserError("A SentencePiece tokenizer needs the path of its .model file.",
                      "Set tokenizer_path, or leave it empty in a data config to train one.");
    }
    return SentencePieceTokenizer::load(spec.path);
  }
  throw UserError("The tokenizer \"" + spec.kind + "\" is unknown.",
                  "Use one of: byte, gpt2, sentencepiece.");
}

}  // namespace mmlab::data
