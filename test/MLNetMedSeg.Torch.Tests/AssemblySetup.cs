// Tests touch thread-local libtorch state (grad mode, autocast, dispose scopes) and assert on the
// process-wide live-tensor count, so they run one at a time.
[assembly: DoNotParallelize]
