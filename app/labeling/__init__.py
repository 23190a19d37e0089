"""The labeling view: image list, canvas, class panel, and the editing model under them."""
