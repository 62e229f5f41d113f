"""The file view of an image: the path layout (a datrie trie) and the zipfile-like Image API."""
