"""zizhi's pipeline: roster → juhe fetch → normalized tables → analytics, orchestrated by Dagster."""
