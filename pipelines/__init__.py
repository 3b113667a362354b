"""zizhi's pipeline: roster → juhe fetch → normalized tables → analytics, run by Dagster."""
