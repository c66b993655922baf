// SPDX-License-Identifier: GPL-3.0-or-later
// Includes QCustomPlot under QT_NO_KEYWORDS. Its header still spells Qt's keywords (signals,
// slots, emit, foreach), which mmlab_ui turns off so that ui/ stays includable next to LibTorch
// (STYLE.md 16); the keywords are defined for this one header and removed again.
#pragma once

#include <QtGlobal>

#define signals Q_SIGNALS
#define slots Q_SLOTS
#define emit Q_EMIT
#define foreach Q_FOREACH
#include <qcustomplot.h>
#undef signals
#undef slots
#undef emit
#undef foreach
