"""Semi-supervised segmentation methods, one file each; ``common`` holds their shared pieces.

Every module here is imported when methods are looked up, so a new file with an ``@register``-ed
class is a new method: no list to edit.
"""
