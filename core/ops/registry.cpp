// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/ops/registry.h"

#include <iostream>

namespace mmlab::ops {

namespace {

// Process-wide records, shared by every thread (a run's trainer and the kernels it calls may
// run on different threads than the one that reads the record).
struct UsedRecord {
  std::mutex mu;
  std::map<std::string, std::string> used;  // op -> implementation of its most recent call
  std::set<std::string> noted;              // lines note_once() has printed
};

UsedRecord& record() {
  static UsedRecord* r = new UsedRecord;  // never destroyed: threads may note during exit
  return *r;
}

}  // namespace

OpsChoice& current_choice() {
  thread_local OpsChoice choice;
  return choice;
}

std::map<std::string, std::string> used_implementations() {
  UsedRecord& r = record();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.used;
}

void note_used(const std::string& op, const std::string& impl) {
  UsedRecord& r = record();
  std::lock_guard<std::mutex> lock(r.mu);
  r.used[op] = impl;
}

void clear_used_implementations() {
  UsedRecord& r = record();
  std::lock_guard<std::mutex> lock(r.mu);
  r.used.clear();
}

void note_once(const std::string& line) {
  UsedRecord& r = record();
  {
    std::lock_guard<std::mutex> lock(r.mu);
    if (!r.noted.insert(line).second) return;
  }
  std::cerr << line << "\n";
}

}  // namespace mmlab::ops
