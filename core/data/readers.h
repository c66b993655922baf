// SPDX-License-Identifier: GPL-3.0-or-later
// Document readers: plain text (a file or a folder), JSON Lines (optionally gzip-compressed, C4's
// shard format) and llm.c's pre-tokenized `.bin` shards. Readers stream documents to a callback so
// a corpus never has to fit in memory as text; a corrupt or truncated file is a UserError naming
// the file and the place (line number or byte offset).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace mmlab::data {

/// On-disk formats of a corpus. kAuto picks per file by extension: `.jsonl`, `.jsonl.gz`,
/// `.json.gz` → kJsonl; `.bin` → kBin; anything else → kText.
enum class SourceFormat { kAuto, kText, kJsonl, kBin };

/// "auto" | "text" | "jsonl" | "bin"; anything else is a UserError listing the valid names.
SourceFormat parse_source_format(const std::string& name);
std::string to_string(SourceFormat format);

/// How a plain-text file becomes documents.
enum class TextSplit {
  kFile,        ///< one file = one document (books, articles)
  kBlankLines,  ///< every blank-line-separated chunk is a document (one-file corpora of paragraphs)
};

/// "file" | "blank_lines"; anything else is a UserError listing the valid names.
TextSplit parse_text_split(const std::string& name);
std::string to_string(TextSplit split);

/// The files a source stands for, in the order they are read: the file itself, or every regular
/// file below a folder, recursively, sorted by path. Hidden files (`.name`) and license/readme
/// files (LICENSE*, LICENCE*, COPYING*, README*, NOTICE*) are skipped so a corpus folder may carry
/// its license. A missing source or a folder without files is a UserError.
std::vector<std::filesystem::path> list_source_files(const std::filesystem::path& source);

/// The format of one file: `format` itself unless it is kAuto, then by extension (see
/// SourceFormat).
SourceFormat resolve_format(const std::filesystem::path& file, SourceFormat format);

/// Called once per document with its text and where it came from ("file.jsonl:12"). `position`
/// is how far into the file the reader is, in bytes of the file as stored (compressed bytes for
/// `.gz`), so callers can report progress.
struct DocumentSink {
  std::function<void(std::string_view text, const std::string& origin)> on_document;
  std::function<void(std::uint64_t position)> on_position;  ///< optional
};

/// Reads a plain-text file as one document (kFile) or blank-line-separated chunks (kBlankLines).
/// Empty documents (only whitespace) are skipped. `\r\n` is kept as it is.
void read_text_file(const std::filesystem::path& file, TextSplit split, const DocumentSink& sink);

/// Reads JSON Lines, plain or gzip-compressed (detected from the content, not the name): one JSON
/// object per line whose `field` member is a string. Blank lines are skipped. A line that is not
/// JSON, not an object, or lacks the string field is a UserError naming the file and line number;
/// a corrupt or truncated gzip stream is a UserError naming the file and the compressed offset.
void read_jsonl_file(const std::filesystem::path& file, const DocumentSink& sink,
                     const std::string& field = "text");

/// An llm.c token shard (`.bin`), memory-mapped read-only. Layout: a header of 256 little-endian
/// int32 (magic 20240520, version 1, token count, rest unused), then `count` uint16 tokens. A file
/// too short for its header or its declared count, a wrong magic or an unknown version is a
/// UserError naming the file and the byte offset where it goes wrong.
class TokenShard {
 public:
  static constexpr std::int32_t kMagic = 20240520;
  static constexpr std::int32_t kVersion = 1;
  static constexpr std::size_t kHeaderInts = 256;
  static constexpr std::size_t kHeaderBytes = kHeaderInts * sizeof(std::int32_t);

  explicit TokenShard(const std::filesystem::path& file);
  ~TokenShard();
  TokenShard(TokenShard&& other) noexcept;
  TokenShard& operator=(TokenShard&& other) noexcept;
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::size_t size() const { return count_; }
  const std::uint16_t* data() const { return tokens_; }
  std::uint16_t operator[](std::size_t i) const { return tokens_[i]; }

  /// Writes a shard in the same layout (used by tests and by anyone converting a corpus).
  static void write(const std::filesystem::path& file, const std::vector<std::uint16_t>& tokens);

 private:
  void release() noexcept;

  std::filesystem::path path_;
  void* map_ = nullptr;  // the whole file, from mmap
  std::size_t map_bytes_ = 0;
  const std::uint16_t* tokens_ = nullptr;
  std::size_t count_ = 0;
};

}  // namespace mmlab::data
