"""Each format the service reads (issue 33), through the API."""
