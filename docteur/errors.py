"""The exceptions docteur raises on top of the built-in OSError family."""


class DocteurError(Exception):
    """Base class of docteur's own errors: the message is one line meant for a user."""


class CorruptImageError(DocteurError):
    """The image is damaged or is not a docteur image."""


class SourceError(DocteurError):
    """A source given to docteur-make cannot be read (missing, unknown ref, unreachable, refused)."""


class RemoteError(DocteurError):
    """An image read over the network cannot be read: unreachable, refused, misbehaving, or changed."""


class ImageChangedError(RemoteError):
    """A remote image was replaced while it was being read: none of its new bytes were used."""


class UpdateError(DocteurError):
    """An update file is damaged, forged, or does not apply to the image it is given."""
