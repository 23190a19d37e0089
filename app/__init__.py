"""The Faster R-CNN Workbench desktop application (Qt). Thin over ``engine``."""
