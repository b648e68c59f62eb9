"""What the tests share: processes, HTTP, the test client's shortcuts, inspection of
stored data, commands, faults, and the documents and servers tests use."""
