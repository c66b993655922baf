// SPDX-License-Identifier: GPL-3.0-or-later
// Sets (or unsets) an environment variable of the test process — and so of the children it starts
// — for a scope, and puts back what was there. The ui tests share one process: a test that points
// MMLAB_BIN at the fake trainer must not leave it there for the real-trainer tests after it.
#pragma once

#include <QByteArray>
#include <QString>
#include <optional>

namespace mmlab::test {

class ScopedEnv {
 public:
  /// `value` nullopt: unset the variable for the scope.
  ScopedEnv(const char* name, const std::optional<QString>& value) : name_(name) {
    if (qEnvironmentVariableIsSet(name)) old_ = qgetenv(name);
    if (value)
      qputenv(name, value->toLocal8Bit());
    else
      qunsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      qputenv(name_, *old_);
    else
      qunsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<QByteArray> old_;
};

}  // namespace mmlab::test
