"""zizhi's pipeline: roster → juhe fetch → normalized tables → analytics, orchestrated by Dagster."""

import warnings

import dagster as dg

# zizhi deliberately uses BackfillPolicy.single_run() (one run covers many shards), which the
# pinned Dagster release labels beta; the warning says nothing an operator can act on.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
