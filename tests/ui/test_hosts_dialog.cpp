// SPDX-License-Identifier: GPL-3.0-or-later
// Settings ▸ Hosts and the experiment dialog's target: hosts added and removed through the
// dialog land in the hosts file `mmlab hosts` reads, refusals are one sentence, and launching on
// a host that cannot be reached is refused in the dialog with the host's sentence.
#include <gtest/gtest.h>

#include <QComboBox>
#include <QDialogButtonBox>
#include <QListWidget>
#include <QPushButton>
#include <QTableWidget>

#include "core/remote/host.h"
#include "qt_app.h"
#include "scoped_env.h"
#include "test_support.h"
#include "ui/experiment_dialog.h"
#include "ui/hosts_dialog.h"

using namespace mmlab::ui;

namespace {

mmlab::remote::Host ssh_host(const std::string& name, int port) {
  mmlab::remote::Host h;
  h.name = name;
  mmlab::remote::parse_target("ssh://nobody@127.0.0.1:" + std::to_string(port), h);
  h.dir = "/tmp/mmlab-runs";
  // Fail at once instead of looking for keys or asking about the host key.
  h.ssh_config = "/dev/null";
  h.ssh_options = {"StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"};
  return h;
}

}  // namespace

TEST(HostsDialog, AddAndRemoveWriteTheHostsFile) {
  mmlab::test::qt_app();
  mmlab::test::TempDir dir;
  const auto file = dir / "hosts.json";
  HostsDialog d(nullptr, file);
  auto* table = d.findChild<QTableWidget*>(QStringLiteral("hosts"));
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->rowCount(), 1);  // local
  QString err;
  ASSERT_TRUE(d.add_host(ssh_host("gpu1", 2222), &err)) << err.toStdString();
  EXPECT_EQ(table->rowCount(), 2);
  EXPECT_EQ(table->item(1, 1)->text(), "ssh://nobody@127.0.0.1:2222");
  const auto saved = mmlab::remote::HostList::load(file);
  ASSERT_EQ(saved.hosts().size(), 2u);
  EXPECT_EQ(saved.get("gpu1").port, 2222);
  EXPECT_EQ(saved.get("gpu1").dir, "/tmp/mmlab-runs");

  EXPECT_FALSE(d.add_host(ssh_host("gpu1", 2223), &err));
  EXPECT_EQ(err.toStdString(),
            "A host named `gpu1` exists already. Remove it first (`mmlab hosts remove gpu1`) or "
            "choose another name.");
  EXPECT_FALSE(d.remove_host("local", &err));
  EXPECT_TRUE(err.startsWith("The host `local` is built in"));

  ASSERT_TRUE(d.remove_host("gpu1", &err));
  EXPECT_EQ(mmlab::remote::HostList::load(file).hosts().size(), 1u);
  EXPECT_EQ(table->rowCount(), 1);
}

TEST(ExperimentDialogTarget, AnUnreachableHostIsRefusedInTheDialog) {
  mmlab::test::qt_app();
  mmlab::test::TempDir dir;
  mmlab::test::ScopedEnv config("XDG_CONFIG_HOME", QString::fromStdString(dir.path().string()));
  {
    auto hosts = mmlab::remote::HostList::load(mmlab::remote::default_hosts_path());
    hosts.add(ssh_host("away", 1));  // nothing listens on port 1: connection refused
    hosts.save();
  }
  ExperimentDialog d;
  auto* target = d.findChild<QComboBox*>(QStringLiteral("target"));
  ASSERT_NE(target, nullptr);
  ASSERT_EQ(target->count(), 2);
  EXPECT_EQ(target->itemText(0), "local");
  EXPECT_EQ(d.target(), "local");
  EXPECT_TRUE(d.check_target());

  target->setCurrentText("away");
  EXPECT_EQ(d.target(), "away");
  auto* launch = d.findChild<QPushButton*>(QStringLiteral("launch"));
  ASSERT_NE(launch, nullptr);
  launch->click();
  EXPECT_NE(d.result(), QDialog::Accepted);
  auto* problems = d.findChild<QListWidget*>(QStringLiteral("problems"));
  ASSERT_NE(problems, nullptr);
  QStringList items;
  for (int i = 0; i < problems->count(); ++i) items << problems->item(i)->text();
  // Only the host's sentence: the document itself is valid.
  ASSERT_EQ(items.size(), 1) << items.join(" | ").toStdString();
  const std::string sentence = items.last().toStdString();
  EXPECT_EQ(
      sentence.rfind("The host away (ssh://nobody@127.0.0.1:1) cannot be reached over ssh (", 0),
      0u)
      << items.join(" | ").toStdString();
  EXPECT_NE(sentence.find("Connection refused"), std::string::npos) << sentence;
}
