// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/data/readers.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/util/error.h"
#include "core/util/fs.h"

namespace mmlab::data {
namespace fs = std::filesystem;

SourceFormat parse_source_format(const std::string& name) {
  if (name == "auto") return SourceFormat::kAuto;
  if (name == "text") return SourceFormat::kText;
  if (name == "jsonl") return SourceFormat::kJsonl;
  if (name == "bin") return SourceFormat::kBin;
  throw UserError("The data format \"" + name + "\" is unknown.",
                  "Use one of: auto, text, jsonl, bin.");
}

std::string to_string(SourceFormat format) {
  switch (format) {
    case SourceFormat::kAuto:
      return "auto";
    case SourceFormat::kText:
      return "text";
    case SourceFormat::kJsonl:
      return "jsonl";
    case SourceFormat::kBin:
      return "bin";
  }
  return "auto";
}

TextSplit parse_text_split(const std::string& name) {
  if (name == "file") return TextSplit::kFile;
  if (name == "blank_lines") return TextSplit::kBlankLines;
  throw UserError("The text split \"" + name + "\" is unknown.", "Use one of: file, blank_lines.");
}

std::string to_string(TextSplit split) {
  return split == TextSplit::kFile ? "file" : "blank_lines";
}

namespace {

bool starts_with_ci(const std::string& s, const char* prefix) {
  size_t n = std::strlen(prefix);
  if (s.size() < n) return false;
  for (size_t i = 0; i < n; ++i) {
    if (std::toupper(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Files that describe a corpus rather than belong to it: a corpus folder may carry its license.
bool is_skipped_name(const std::string& name) {
  if (name.empty() || name[0] == '.') return true;
  for (const char* p : {"LICENSE", "LICENCE", "COPYING", "README", "NOTICE"}) {
    if (starts_with_ci(name, p)) return true;
  }
  return false;
}

std::string offset_text(std::uint64_t offset) {
  return "byte offset " + std::to_string(offset);
}

}  // namespace

std::vector<fs::path> list_source_files(const fs::path& source) {
  std::error_code ec;
  auto status = fs::status(source, ec);
  if (ec || !fs::exists(status)) {
    throw UserError("The corpus " + source.string() + " does not exist.",
                    "Check the data source path (relative paths are taken from the current "
                    "directory).");
  }
  std::vector<fs::path> files;
  if (fs::is_regular_file(status)) {
    files.push_back(source);
    return files;
  }
  if (!fs::is_directory(status)) {
    throw UserError("The corpus " + source.string() + " is neither a file nor a folder.",
                    "Point the data source at a text, .jsonl, .jsonl.gz or .bin file or a folder.");
  }
  fs::recursive_directory_iterator it(source, fs::directory_options::follow_directory_symlink, ec);
  if (ec) {
    throw UserError(
        "The corpus folder " + source.string() + " cannot be read: " + ec.message() + ".",
        "Check its permissions.");
  }
  // Symbolic links are followed, so a folder can be reached twice (a link to a parent loops
  // until the system refuses the path): the files below it would be read again and again.
  std::set<std::pair<dev_t, ino_t>> folders;
  auto first_visit = [&](const fs::path& dir) {
    struct stat st {};
    return ::stat(dir.c_str(), &st) != 0 || folders.insert({st.st_dev, st.st_ino}).second;
  };
  first_visit(source);
  // A folder that cannot be listed stops the walk with an error: training on the part read so
  // far would be a silent mistake.
  fs::path last = source;
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    last = it->path();
    const std::string name = last.filename().string();
    std::error_code type_ec;
    const bool is_dir = it->is_directory(type_ec);
    if (is_skipped_name(name)) {
      if (is_dir) it.disable_recursion_pending();
      continue;
    }
    if (is_dir && !first_visit(last)) {
      throw UserError("The corpus folder " + source.string() + " reaches the same folder twice: " +
                          last.string() + " leads back to a folder already read.",
                      "Remove that symbolic link, or point the data source at one of the folders.");
    }
    if (it->is_regular_file(type_ec)) files.push_back(last);
  }
  if (ec) {
    throw UserError("The corpus folder " + source.string() + " cannot be read past " +
                        last.string() + ": " + ec.message() + ".",
                    "Check the permissions and symbolic links below it.");
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    throw UserError("The corpus folder " + source.string() + " contains no files.",
                    "Put text, .jsonl, .jsonl.gz or .bin files in it, or choose another source.");
  }
  return files;
}

SourceFormat resolve_format(const fs::path& file, SourceFormat format) {
  if (format != SourceFormat::kAuto) return format;
  const std::string name = file.filename().string();
  if (ends_with(name, ".jsonl") || ends_with(name, ".jsonl.gz") || ends_with(name, ".json.gz")) {
    return SourceFormat::kJsonl;
  }
  if (ends_with(name, ".bin")) return SourceFormat::kBin;
  return SourceFormat::kText;
}

void read_text_file(const fs::path& file, TextSplit split, const DocumentSink& sink) {
  const std::string text = read_file(file);
  auto is_blank = [](std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
  };
  if (split == TextSplit::kFile) {
    if (!is_blank(text)) sink.on_document(text, file.string());
  } else {
    // A chunk ends at a line that holds only whitespace; line numbers name each chunk's origin.
    std::string_view all(text);
    size_t pos = 0;
    size_t line = 1;
    size_t chunk_begin = std::string_view::npos;
    size_t chunk_line = 0;
    size_t chunk_end = 0;
    auto flush = [&] {
      if (chunk_begin != std::string_view::npos) {
        std::string_view chunk = all.substr(chunk_begin, chunk_end - chunk_begin);
        // Drop the chunk's trailing newline: the end-of-text id separates documents instead.
        while (!chunk.empty() && (chunk.back() == '\n' || chunk.back() == '\r')) {
          chunk.remove_suffix(1);
        }
        sink.on_document(chunk, file.string() + ":" + std::to_string(chunk_line));
        chunk_begin = std::string_view::npos;
      }
    };
    while (pos < all.size()) {
      size_t nl = all.find('\n', pos);
      size_t end = nl == std::string_view::npos ? all.size() : nl + 1;
      if (is_blank(all.substr(pos, end - pos))) {
        flush();
      } else {
        if (chunk_begin == std::string_view::npos) {
          chunk_begin = pos;
          chunk_line = line;
        }
        chunk_end = end;
      }
      pos = end;
      ++line;
    }
    flush();
  }
  if (sink.on_position) sink.on_position(text.size());
}

namespace {

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

}  // namespace

void read_jsonl_file(const fs::path& file, const DocumentSink& sink, const std::string& field) {
  std::error_code exists_ec;
  if (!fs::exists(file, exists_ec)) {
    throw UserError("The file " + file.string() + " does not exist.", "Check the data source.");
  }
  // gzopen reads plain files transparently, so one loop serves .jsonl and .jsonl.gz.
  GzFile gz(gzopen(file.c_str(), "rb"));
  if (!gz) {
    throw UserError(
        "The file " + file.string() + " cannot be opened: " + std::strerror(errno) + ".",
        "Check its permissions.");
  }
  gzbuffer(gz.get(), 1 << 17);
  // zlib's own words ("invalid distance too far back") mean nothing to someone training a model:
  // say only whether the stream is cut short or damaged.
  auto corrupt = [&]() {
    int errnum = 0;
    gzerror(gz.get(), &errnum);
    const std::string detail = errnum == Z_ERRNO       ? std::strerror(errno)
                               : errnum == Z_BUF_ERROR ? "the compressed data ends early"
                                                       : "the compressed data is damaged";
    throw UserError("The file " + file.string() + " is corrupt or truncated at compressed " +
                        offset_text(static_cast<std::uint64_t>(gzoffset(gz.get()))) + " (" +
                        detail + ").",
                    "Download or recompress it again, or remove it from the corpus.");
  };

  std::string pending;  // bytes of the current, not yet complete line
  std::vector<char> buf(1 << 17);
  size_t line_no = 0;
  auto handle_line = [&](std::string_view line) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (std::all_of(line.begin(), line.end(),
                    [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; })) {
      return;
    }
    const std::string where = file.string() + ":" + std::to_string(line_no);
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      throw UserError(
          "Line " + std::to_string(line_no) + " of " + file.string() + " is not valid JSON.",
          "Each line of a JSON Lines file must be one JSON object; fix or remove "
          "that line.");
    }
    if (!j.is_object()) {
      throw UserError(
          "Line " + std::to_string(line_no) + " of " + file.string() + " is not a JSON object.",
          "Each line must be an object with a \"" + field + "\" string.");
    }
    auto it = j.find(field);
    if (it == j.end() || !it->is_string()) {
      throw UserError("Line " + std::to_string(line_no) + " of " + file.string() + " has no \"" +
                          field + "\" string.",
                      "Set the data config's text_field to the member that holds the text.");
    }
    const std::string& text = it->get_ref<const std::string&>();
    if (!text.empty()) sink.on_document(text, where);
  };

  for (;;) {
    int n = gzread(gz.get(), buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) corrupt();
    if (n == 0) {
      // zlib reports a stream cut short only through gzerror after the last read.
      int errnum = 0;
      gzerror(gz.get(), &errnum);
      if (errnum != Z_OK && errnum != Z_STREAM_END) corrupt();
      break;
    }
    std::string_view chunk(buf.data(), static_cast<size_t>(n));
    size_t start = 0;
    for (;;) {
      size_t nl = chunk.find('\n', start);
      if (nl == std::string_view::npos) {
        pending.append(chunk.substr(start));
        break;
      }
      if (pending.empty()) {
        handle_line(chunk.substr(start, nl - start));
      } else {
        pending.append(chunk.substr(start, nl - start));
        handle_line(pending);
        pending.clear();
      }
      start = nl + 1;
    }
    if (sink.on_position) sink.on_position(static_cast<std::uint64_t>(gzoffset(gz.get())));
  }
  if (!pending.empty()) handle_line(pending);
}

// --- TokenShard --------------------------------------------------------------------------------

TokenShard::TokenShard(const fs::path& file) : path_(file) {
  int fd = ::open(file.c_str(), O_RDONLY);
  if (fd < 0) {
    if (errno == ENOENT) {
      throw UserError("The token shard " + file.string() + " does not exist.",
                      "Check the data source.");
    }
    throw UserError(
        "The token shard " + file.string() + " cannot be opened: " + std::strerror(errno) + ".",
        "Check its permissions.");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw UserError(
        "The token shard " + file.string() + " cannot be read: " + std::strerror(err) + ".",
        "Check its permissions.");
  }
  const auto bytes = static_cast<std::uint64_t>(st.st_size);
  const std::string hint = "The file is truncated or not an llm.c token shard; recreate it.";
  if (bytes < kHeaderBytes) {
    ::close(fd);
    throw UserError("The token shard " + file.string() + " ends at " + offset_text(bytes) +
                        ", inside its " + std::to_string(kHeaderBytes) + "-byte header.",
                    hint);
  }
  void* map = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) {
    throw UserError(
        "The token shard " + file.string() + " cannot be mapped: " + std::strerror(err) + ".",
        "Check that it is a regular, readable file.");
  }
  map_ = map;
  map_bytes_ = bytes;
  std::int32_t header[3];
  std::memcpy(header, map, sizeof(header));
  if (header[0] != kMagic) {
    release();
    throw UserError("The token shard " + file.string() + " has magic number " +
                        std::to_string(header[0]) + " at " + offset_text(0) + ", not " +
                        std::to_string(kMagic) + ".",
                    hint);
  }
  if (header[1] != kVersion) {
    release();
    throw UserError("The token shard " + file.string() + " has version " +
                        std::to_string(header[1]) + " at " + offset_text(4) +
                        "; only version 1 (uint16 tokens) is supported.",
                    hint);
  }
  if (header[2] < 0) {
    release();
    throw UserError("The token shard " + file.string() + " declares a negative token count at " +
                        offset_text(8) + ".",
                    hint);
  }
  const auto count = static_cast<std::uint64_t>(header[2]);
  const std::uint64_t needed = kHeaderBytes + count * sizeof(std::uint16_t);
  if (bytes < needed) {
    release();
    throw UserError("The token shard " + file.string() + " is truncated at " + offset_text(bytes) +
                        ": its header declares " + std::to_string(count) + " tokens, which need " +
                        std::to_string(needed) + " bytes.",
                    hint);
  }
  count_ = static_cast<size_t>(count);
  tokens_ = reinterpret_cast<const std::uint16_t*>(static_cast<const char*>(map) + kHeaderBytes);
}

TokenShard::~TokenShard() {
  release();
}

TokenShard::TokenShard(TokenShard&& other) noexcept {
  *this = std::move(other);
}

TokenShard& TokenShard::operator=(TokenShard&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    map_ = other.map_;
    map_bytes_ = other.map_bytes_;
    tokens_ = other.tokens_;
    count_ = other.count_;
    other.map_ = nullptr;
    other.map_bytes_ = 0;
    other.tokens_ = nullptr;
    other.count_ = 0;
  }
  return *this;
}

void TokenShard::release() noexcept {
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
  map_ = nullptr;
  map_bytes_ = 0;
  tokens_ = nullptr;
  count_ = 0;
}

void TokenShard::write(const fs::path& file, const std::vector<std::uint16_t>& tokens) {
  std::string bytes(kHeaderBytes + tokens.size() * sizeof(std::uint16_t), '\0');
  std::int32_t header[3] = {kMagic, kVersion, static_cast<std::int32_t>(tokens.size())};
  std::memcpy(bytes.data(), header, sizeof(header));
  if (!tokens.empty()) {
    std::memcpy(bytes.data() + kHeaderBytes, tokens.data(), tokens.size() * sizeof(std::uint16_t));
  }
  write_file_atomically(file, bytes);
}

}  // namespace mmlab::data
