// SPDX-License-Identifier: GPL-3.0-or-later
// Points QSettings (user scope) at a folder of the test for a scope, so a test that writes
// settings (the recent databases, the theme) neither reads the developer's own nor leaves its
// choices to the tests after it; the default place ($XDG_CONFIG_HOME or ~/.config) comes back.
#pragma once

#include <QDir>
#include <QSettings>
#include <QString>

namespace mmlab::test {

class ScopedSettings {
 public:
  explicit ScopedSettings(const QString& dir) {
    QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope, dir);
    QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, dir);
  }
  ~ScopedSettings() {
    const QString home = qEnvironmentVariable("XDG_CONFIG_HOME", QDir::homePath() + "/.config");
    QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope, home);
    QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, home);
  }
  ScopedSettings(const ScopedSettings&) = delete;
  ScopedSettings& operator=(const ScopedSettings&) = delete;
};

}  // namespace mmlab::test
