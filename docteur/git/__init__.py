"""The Git object model docteur needs: ids, trees and commits, without dulwich (the reader stays small)."""
