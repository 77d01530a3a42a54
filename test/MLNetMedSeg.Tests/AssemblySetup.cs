// Tests share thread-local libtorch state and assert on the process-wide live-tensor count: run them one at a time.
[assembly: DoNotParallelize]
