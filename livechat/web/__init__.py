"""Static files of the web side: the loader, the widget, the test pages."""
