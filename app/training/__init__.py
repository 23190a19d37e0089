"""The Train tab: training settings, live curves, past runs, evaluation."""
