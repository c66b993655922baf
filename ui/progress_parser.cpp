// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/progress_parser.h"

#include <nlohmann/json.hpp>

namespace mmlab::ui {

bool ProgressParser::reject(std::string why) {
  ++malformed_;
  last_error_ = std::move(why);
  return false;
}

bool ProgressParser::parse_line(std::string_view line, ProgressEvent& out) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
    line.remove_suffix(1);
  while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
  if (line.empty()) return false;
  if (line.size() > kMaxLine) return reject("line longer than 1 MiB");

  // allow_exceptions=false: malformed JSON yields a discarded value instead of a throw.
  const nlohmann::json j =
      nlohmann::json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return reject("not JSON: " + std::string(line.substr(0, 80)));
  std::string why;
  switch (parse_event(j, out, why)) {
    case EventParse::kEvent:
      ++events_;
      return true;
    case EventParse::kUnknownEvent:
      ++ignored_;  // a newer trainer's event: not an error, just not ours to interpret
      return false;
    case EventParse::kMalformed:
      break;
  }
  return reject(std::move(why));
}

std::vector<ProgressEvent> ProgressParser::feed(std::string_view chunk) {
  std::vector<ProgressEvent> out;
  while (!chunk.empty()) {
    size_t nl = chunk.find('\n');
    std::string_view piece = chunk.substr(0, nl);
    if (overflow_) {
      if (nl == std::string_view::npos) return out;  // still inside the over-long line
      overflow_ = false;
    } else if (pending_.size() + piece.size() > kMaxLine) {
      pending_.clear();
      reject("line longer than 1 MiB");
      overflow_ = nl == std::string_view::npos;
    } else if (nl == std::string_view::npos) {
      pending_.append(piece);
      return out;
    } else {
      ProgressEvent e;
      bool ok;
      if (pending_.empty()) {
        ok = parse_line(piece, e);
      } else {
        pending_.append(piece);
        ok = parse_line(pending_, e);
        pending_.clear();
      }
      if (ok) out.push_back(std::move(e));
    }
    if (nl == std::string_view::npos) break;
    chunk.remove_prefix(nl + 1);
  }
  return out;
}

std::vector<ProgressEvent> ProgressParser::finish() {
  std::vector<ProgressEvent> out;
  overflow_ = false;
  if (pending_.empty()) return out;
  ProgressEvent e;
  if (parse_line(pending_, e)) out.push_back(std::move(e));
  pending_.clear();
  return out;
}

}  // namespace mmlab::ui
