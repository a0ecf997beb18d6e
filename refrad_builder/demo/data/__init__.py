"""Real data shipped for the demo: one real CT series with its real TotalSegmentator output."""
