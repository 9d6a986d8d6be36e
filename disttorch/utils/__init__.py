"""disttorch.utils: data loading (disttorch.utils.data)."""
