"""The unified CT+MR label schema (``labels``): class ids, names in German and English,
sides and parents, generated from TotalSegmentator's class maps.

Shared vocabulary of imaging, reports, text and publishing; imports no other part of the
package.
"""
