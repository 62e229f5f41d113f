"""Git pack index, version 2: lookup of an object's offset by id, and writing an index git would write."""
