// SPDX-License-Identifier: GPL-3.0-or-later
// GPT-2's byte-level BPE (Radford et al. 2019; OpenAI's encoder.py is the reference): text is
// split by GPT-2's pre-tokenization pattern, each piece's UTF-8 bytes are mapped to printable
// characters (bytes_to_unicode), and BPE merges are applied by rank. Merges work on ids here
// rather than strings: every merge result of a byte-level BPE is itself in the vocabulary.
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <mutex>
#include <queue>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/data/tokenizer.h"
#include "core/data/unicode.h"
#include "core/util/error.h"
#include "core/util/fs.h"
#include "core/util/utf8.h"

namespace mmlab::data {
namespace fs = std::filesystem;

namespace {

// OpenAI's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100 onwards in byte order, so every byte string is a string of visible characters.
std::array<char32_t, 256> bytes_to_unicode() {
  std::array<char32_t, 256> table{};
  int next = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    table[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next++);
  }
  return table;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
         static_cast<std::uint32_t>(b);
}

enum class CharClass { kLetter, kNumber, kSpace, kOther };

CharClass classify(char32_t cp) {
  if (unicode::is_letter(cp)) return CharClass::kLetter;
  if (unicode::is_number(cp)) return CharClass::kNumber;
  if (unicode::is_space(cp)) return CharClass::kSpace;
  return CharClass::kOther;
}

const char* const kEotText = "<|endoftext|>";

}  // namespace

struct Gpt2Tokenizer::Impl {
  std::vector<std::string> id_bytes;  // raw bytes each id stands for
  std::array<std::int32_t, 256> byte_ids{};
  struct Merge {
    std::int32_t rank;
    std::int32_t result;
  };
  std::unordered_map<std::uint64_t, Merge> merges;
  // The merge of each rank (rank = line of the merges file), for merging long pieces.
  struct RankedMerge {
    std::int32_t a, b, result;
  };
  std::vector<RankedMerge> by_rank;
  std::int32_t eot = -1;
  std::uint64_t hash = 0;
  fs::path dir;

  // Words repeat (Zipf), so BPE results are cached; shards keep threads from queueing on one lock.
  static constexpr std::size_t kShards = 16;
  static constexpr std::size_t kMaxEntriesPerShard = 1 << 16;
  static constexpr std::size_t kMaxCachedPieceBytes = 256;
  // Up to this length a piece is merged by rescanning (see merge_by_rank).
  static constexpr std::size_t kRescanMaxBytes = 128;
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<std::int32_t>> words;
  };
  mutable std::array<Shard, kShards> cache;

  void bpe(std::string_view piece, std::vector<std::int32_t>& out) const;
  std::vector<std::int32_t> merge_by_rank(std::string_view piece) const;
};

// encoder.py's bpe(): while some adjacent pair is a merge, take the pair of lowest rank and merge
// every occurrence of it, left to right; pairs that these merges create are looked at in the
// next round. A pre-token has no length limit (GPT-2's regex takes a whole run of letters, digits
// or other symbols), and rescanning the word every round takes time quadratic in its length: a
// 64 KiB word of random letters took 34 s. Short pieces, nearly all of them, are rescanned as in
// encoder.py; longer ones keep their candidate pairs in buckets by rank, so that a round visits
// only the pairs of its rank and a merge adds only the two pairs it creates.
std::vector<std::int32_t> Gpt2Tokenizer::Impl::merge_by_rank(std::string_view piece) const {
  if (piece.size() >= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    throw UserError("A document holds a word of more than 2 GiB without spaces or punctuation.",
                    "Split the document; no tokenizer can learn from such a word.");
  }
  std::vector<std::int32_t> word(piece.size());
  for (std::size_t i = 0; i < piece.size(); ++i) {
    word[i] = byte_ids[static_cast<unsigned char>(piece[i])];
  }
  if (piece.size() <= kRescanMaxBytes) {
    while (word.size() > 1) {
      std::int32_t best_rank = std::numeric_limits<std::int32_t>::max();
      std::int32_t best_a = 0, best_b = 0, best_result = 0;
      for (std::size_t i = 0; i + 1 < word.size(); ++i) {
        auto it = merges.find(pair_key(word[i], word[i + 1]));
        if (it != merges.end() && it->second.rank < best_rank) {
          best_rank = it->second.rank;
          best_a = word[i];
          best_b = word[i + 1];
          best_result = it->second.result;
        }
      }
      if (best_rank == std::numeric_limits<std::int32_t>::max()) break;
      std::size_t w = 0;
      for (std::size_t i = 0; i < word.size(); ++i) {
        if (i + 1 < word.size() && word[i] == best_a && word[i + 1] == best_b) {
          word[w++] = best_result;
          ++i;
        } else {
          word[w++] = word[i];
        }
      }
      word.resize(w);
    }
    return word;
  }

  // The word as a linked list over its bytes' positions: a merge keeps the left symbol and
  // unlinks the right one.
  constexpr std::int32_t kNone = -1;
  const auto n = static_cast<std::int32_t>(word.size());
  std::vector<std::int32_t> next(word.size()), prev(word.size());
  for (std::int32_t i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? i + 1 : kNone;
    prev[i] = i - 1;
  }
  // pending[rank]: left positions where a pair of that rank was seen (some since merged away);
  // ranks_due: the ranks with pending positions, lowest first.
  std::vector<std::vector<std::int32_t>> pending(by_rank.size());
  std::priority_queue<std::int32_t, std::vector<std::int32_t>, std::greater<>> ranks_due;
  auto note_pair = [&](std::int32_t left) {
    if (left == kNone || next[left] == kNone) return;
    auto it = merges.find(pair_key(word[left], word[next[left]]));
    if (it == merges.end()) return;
    std::vector<std::int32_t>& at = pending[static_cast<std::size_t>(it->second.rank)];
    if (at.empty()) ranks_due.push(it->second.rank);
    at.push_back(left);
  };
  for (std::int32_t i = 0; i + 1 < n; ++i) note_pair(i);
  std::vector<std::int32_t> round, merged;
  while (!ranks_due.empty()) {
    const RankedMerge& merge = by_rank[static_cast<std::size_t>(ranks_due.top())];
    round.swap(pending[static_cast<std::size_t>(ranks_due.top())]);
    ranks_due.pop();
    std::sort(round.begin(), round.end());  // left to right, as encoder.py merges
    merged.clear();
    for (std::int32_t left : round) {
      // Still this pair? A symbol only ever grows to stand for more text, so a position whose
      // pair has changed never holds this pair again.
      const std::int32_t right = next[left];
      if (word[left] != merge.a || right == kNone || word[right] != merge.b) continue;
      word[left] = merge.result;
      word[right] = -1;  // gone: matches no pair
      next[left] = next[right];
      if (next[right] != kNone) prev[next[right]] = left;
      merged.push_back(left);
    }
    round.clear();
    for (std::int32_t left : merged) {
      note_pair(prev[left]);
      note_pair(left);
    }
  }
  std::vector<std::int32_t> out;
  for (std::int32_t i = 0; i != kNone; i = next[i]) out.push_back(word[i]);
  return out;
}

void Gpt2Tokenizer::Impl::bpe(std::string_view piece, std::vector<std::int32_t>& out) const {
  if (piece.size() == 1) {
    out.push_back(byte_ids[static_cast<unsigned char>(piece[0])]);
    return;
  }
  // Long pieces seldom repeat, and caching them would let a few odd documents fill memory.
  if (piece.size() > kMaxCachedPieceBytes) {
    const std::vector<std::int32_t> word = merge_by_rank(piece);
    out.insert(out.end(), word.begin(), word.end());
    return;
  }
  Shard& shard = cache[std::hash<std::string_view>{}(piece) % kShards];
  {
    std::lock_guard<std::mutex> lock(shard.mutex);
    auto it = shard.words.find(std::string(piece));
    if (it != shard.words.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<std::int32_t> word = merge_by_rank(piece);
  out.insert(out.end(), word.begin(), word.end());
  std::lock_guard<std::mutex> lock(shard.mutex);
  if (shard.words.size() >= kMaxEntriesPerShard) shard.words.clear();
  shard.words.emplace(std::string(piece), std::move(word));
}

Gpt2Tokenizer::Gpt2Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Gpt2Tokenizer::~Gpt2Tokenizer() = default;

std::unique_ptr<Gpt2Tokenizer> Gpt2Tokenizer::from_dir(const fs::path& dir) {
  const std::string hint =
      "Run scripts/get-corpus (the set-up command does this), or set the "
      "data config's tokenizer_path to a folder with those files.";
  std::error_code ec;  // a path that cannot be looked at counts as missing
  auto has = [&](const char* name) { return fs::exists(dir / name, ec); };
  if (has("encoder.json") && has("vocab.bpe")) {
    return from_files(dir / "encoder.json", dir / "vocab.bpe");
  }
  if (has("vocab.json") && has("merges.txt")) {
    return from_files(dir / "vocab.json", dir / "merges.txt");
  }
  if (!fs::is_directory(dir, ec)) {
    throw UserError("The GPT-2 tokenizer is not installed in " + dir.string() + ".", hint);
  }
  throw UserError("The folder " + dir.string() +
                      " holds no GPT-2 tokenizer files (encoder.json + vocab.bpe, or vocab.json "
                      "+ merges.txt).",
                  hint);
}

std::unique_ptr<Gpt2Tokenizer> Gpt2Tokenizer::from_files(const fs::path& vocab_file,
                                                         const fs::path& merges_file) {
  auto impl = std::make_unique<Impl>();
  impl->dir = vocab_file.parent_path();
  const std::string fix =
      "Download the tokenizer files again (scripts/get-corpus fetches GPT-2's).";

  const std::string vocab_text = read_file(vocab_file);
  nlohmann::json vocab = nlohmann::json::parse(vocab_text, nullptr, false);
  if (vocab.is_discarded() || !vocab.is_object() || vocab.empty()) {
    throw UserError("The GPT-2 vocabulary " + vocab_file.string() +
                        " is not a JSON object mapping tokens to ids.",
                    fix);
  }
  std::unordered_map<char32_t, int> byte_of;
  const auto to_unicode = bytes_to_unicode();
  for (int b = 0; b < 256; ++b) byte_of[to_unicode[b]] = b;

  std::unordered_map<std::string, std::int32_t> ids;
  ids.reserve(vocab.size());
  std::int32_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<std::int64_t>() < 0 ||
        it.value().get<std::int64_t>() > (1 << 24)) {
      throw UserError("The GPT-2 vocabulary " + vocab_file.string() + " maps \"" + it.key() +
                          "\" to something that is not a token id.",
                      fix);
    }
    const auto id = static_cast<std::int32_t>(it.value().get<std::int64_t>());
    ids[it.key()] = id;
    max_id = std::max(max_id, id);
  }
  impl->id_bytes.assign(static_cast<std::size_t>(max_id) + 1, std::string());
  for (const auto& [token, id] : ids) {
    // A token is the byte string its characters stand for; a token with characters outside the
    // byte alphabet (an added special token) stands for its own UTF-8.
    std::string bytes;
    bool mapped = true;
    for (std::size_t pos = 0; pos < token.size();) {
      std::size_t len = 0;
      char32_t cp = decode_utf8(token, pos, &len);
      auto b = byte_of.find(cp);
      if (b == byte_of.end()) {
        mapped = false;
        break;
      }
      bytes += static_cast<char>(b->second);
      pos += len;
    }
    impl->id_bytes[static_cast<std::size_t>(id)] = mapped ? bytes : token;
  }
  for (int b = 0; b < 256; ++b) {
    std::string symbol;
    append_utf8(symbol, to_unicode[b]);
    auto it = ids.find(symbol);
    if (it == ids.end()) {
      throw UserError("The GPT-2 vocabulary " + vocab_file.string() +
                          " lacks the symbol for byte " + std::to_string(b) +
                          ", so it is not a byte-level BPE vocabulary.",
                      fix);
    }
    impl->byte_ids[b] = it->second;
  }
  auto eot = ids.find(kEotText);
  if (eot == ids.end()) {
    throw UserError(
        "The GPT-2 vocabulary " + vocab_file.string() + " has no \"" + kEotText + "\" token.", fix);
  }
  impl->eot = eot->second;

  const std::string merges_text = read_file(merges_file);
  std::size_t pos = 0;
  std::size_t line_no = 0;
  std::int32_t rank = 0;
  while (pos < merges_text.size()) {
    std::size_t nl = merges_text.find('\n', pos);
    std::size_t end = nl == std::string::npos ? merges_text.size() : nl;
    std::string_view line(merges_text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.substr(0, 9) == "#version:")) continue;
    std::size_t space = line.find(' ');
    if (space == std::string_view::npos || space == 0 || space + 1 >= line.size() ||
        line.find(' ', space + 1) != std::string_view::npos) {
      throw UserError("Line " + std::to_string(line_no) + " of the GPT-2 merges file " +
                          merges_file.string() + " is not two tokens separated by a space.",
                      fix);
    }
    const std::string a(line.substr(0, space));
    const std::string b(line.substr(space + 1));
    auto ia = ids.find(a);
    auto ib = ids.find(b);
    auto ir = ids.find(a + b);
    if (ia == ids.end() || ib == ids.end() || ir == ids.end()) {
      throw UserError("Line " + std::to_string(line_no) + " of the GPT-2 merges file " +
                          merges_file.string() + " merges tokens that are not in " +
                          vocab_file.filename().string() + ".",
                      "Use the merges file that belongs to that vocabulary.");
    }
    impl->merges.emplace(pair_key(ia->second, ib->second), Impl::Merge{rank, ir->second});
    impl->by_rank.push_back({ia->second, ib->second, ir->second});
    ++rank;
  }

  // Hash what decides the ids, not the file layout, so both layouts of one tokenizer agree.
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, 0x6770742d32ULL);
  for (const auto& bytes : impl->id_bytes) {
    std::uint64_t n = bytes.size();
    XXH64_update(state, &n, sizeof(n));
    XXH64_update(state, bytes.data(), bytes.size());
  }
  std::vector<std::pair<std::int32_t, std::uint64_t>> ranked;
  ranked.reserve(impl->merges.size());
  for (const auto& [key, merge] : impl->merges) ranked.emplace_back(merge.rank, key);
  std::sort(ranked.begin(), ranked.end());
  for (const auto& [r, key] : ranked) XXH64_update(state, &key, sizeof(key));
  XXH64_update(state, &impl->eot, sizeof(impl->eot));
  impl->hash = XXH64_digest(state);
  XXH64_freeState(state);
  return std::unique_ptr<Gpt2Tokenizer>(new Gpt2Tokenizer(std::move(impl)));
}

std::vector<std::string_view> Gpt2Tokenizer::pretokenize(std::string_view s) {
  std::vector<std::string_view> out;
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    std::size_t len = 0;
    char32_t c = decode_utf8(s, i, &len);
    // 's 't 're 've 'm 'll 'd come first in the alternation (lower case only, as in GPT-2).
    if (c == '\'' && i + 1 < n) {
      char a = s[i + 1];
      if (a == 's' || a == 't' || a == 'm' || a == 'd') {
        out.push_back(s.substr(i, 2));
        i += 2;
        continue;
      }
      if (i + 2 < n) {
        char b = s[i + 2];
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
          out.push_back(s.substr(i, 3));
          i += 3;
          continue;
        }
      }
    }
    const std::size_t start = i;
    CharClass cls = classify(c);
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: one leading space joins the run after it.
    if (c == ' ' && i + 1 < n) {
      std::size_t len2 = 0;
      char32_t c2 = decode_utf8(s, i + 1, &len2);
      CharClass cls2 = classify(c2);
      if (cls2 != CharClass::kSpace) {
        cls = cls2;
        i += 1;
        len = len2;
      }
    }
    if (cls != CharClass::kSpace) {
      std::size_t j = i + len;
      while (j < n) {
        std::size_t l = 0;
        if (classify(decode_utf8(s, j, &l)) != cls) break;
        j += l;
      }
      out.push_back(s.substr(start, j - start));
      i = j;
      continue;
    }
    // `\s+(?!\S)` then `\s+`: a whitespace run followed by text gives up its last character, which
    // then starts the next piece (" world" keeps its space); at the end of the text it stays whole.
    std::size_t j = i;
    std::size_t last = i;  // start of the run's last code point
    std::size_t count = 0;
    while (j < n) {
      std::size_t l = 0;
      if (!unicode::is_space(decode_utf8(s, j, &l))) break;
      last = j;
      j += l;
      ++count;
    }
    if (j < n && count >= 2) j = last;
    out.push_back(s.substr(start, j - start));
    i = j;
  }
  return out;
}

std::vector<std::int32_t> Gpt2Tokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  for (std::string_view piece : pretokenize(text)) impl_->bpe(piece, ids);
  return ids;
}

std::string Gpt2Tokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string out;
  for (std::int32_t id : ids) {
    if (id < 0 || static_cast<std::size_t>(id) >= impl_->id_bytes.size()) {
      throw UserError("The token id " + std::to_string(id) + " is outside GPT-2's vocabulary of " +
                          std::to_string(impl_->id_bytes.size()) + " ids.",
                      "Decode ids produced by the same tokenizer.");
    }
    if (id == impl_->eot) continue;
    out += impl_->id_bytes[static_cast<std::size_t>(id)];
  }
  return out;
}

std::int32_t Gpt2Tokenizer::vocab_size() const {
  return static_cast<std::int32_t>(impl_->id_bytes.size());
}
std::int32_t Gpt2Tokenizer::eot_id() const {
  return impl_->eot;
}
std::uint64_t Gpt2Tokenizer::content_hash() const {
  return impl_->hash;
}
TokenizerSpec Gpt2Tokenizer::spec() const {
  return {"gpt2", impl_->dir};
}

}  // namespace mmlab::data
