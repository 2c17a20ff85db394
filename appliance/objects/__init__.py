"""Swift semantics over `storage.objects`: the component, HTTP-free rules, large objects."""
