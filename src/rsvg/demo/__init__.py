"""The main job end to end: synthetic scenes → dataset → training → evaluation → an HTML report."""
