//! The measurement wrapper through the real `backup` executable: exit codes, peak
//! memory of the one child, and the kill of its whole process group when stopped.

use std::path::Path;
use std::time::{Duration, Instant};

use bench::measure::{MeasureError, Measured};

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_backup"))
}

#[test]
fn accepts_child_output_exit_code_and_wall_time() {
    let cmd = Measured::new("/bin/sh").args(["-c", "echo out; echo err >&2; sleep 0.2; exit 3"]);
    let out = cmd
        .run(exe(), Duration::from_millis(10), &mut || true)
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, "err");
    assert!(
        out.usage.wall >= Duration::from_millis(200),
        "{:?}",
        out.usage
    );
}

#[test]
fn accepts_peak_memory_of_the_child_alone() {
    // 200 MiB touched by the child; the wrapper itself stays small.
    let cmd = Measured::new("python3").args(["-c", "b = bytearray(200 << 20); print(len(b))"]);
    let out = cmd
        .run(exe(), Duration::from_millis(10), &mut || true)
        .unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.usage.max_rss >= 200 << 20, "{:?}", out.usage);
    assert!(out.usage.max_rss < 400 << 20, "{:?}", out.usage);
    let small = Measured::new("/bin/true")
        .run(exe(), Duration::from_millis(10), &mut || true)
        .unwrap();
    assert!(small.usage.max_rss < 50 << 20, "{:?}", small.usage);
}

#[test]
fn accepts_environment_cleared_by_prefix_and_set() {
    let cmd = Measured::new("/bin/sh")
        .args([
            "-c",
            "echo \"${PATH:+path}:${BENCH_TEST_X:-unset}:$BENCH_TEST_Y\"",
        ])
        .clear_env_prefix("BENCH_TEST_")
        .env("BENCH_TEST_Y", "y");
    let out = cmd
        .run(exe(), Duration::from_millis(10), &mut || true)
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "path:unset:y\n");
}

#[test]
fn rejects_stopped_command_and_kills_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 30", pid_file.display());
    let cmd = Measured::new("/bin/sh").args(["-c", &script]);
    let start = Instant::now();
    let err = cmd
        .run(exe(), Duration::from_millis(10), &mut || !pid_file.exists())
        .unwrap_err();
    assert!(matches!(err, MeasureError::Stopped { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(20));
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Killed with its group, then reaped by init: gone, or at most a zombie briefly.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        let alive = state.as_deref().is_some_and(|s| {
            let rest = &s[s.rfind(')').unwrap() + 1..];
            !rest.trim_start().starts_with('Z')
        });
        if !alive {
            break;
        }
        assert!(Instant::now() < deadline, "sleep {pid} survived the stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}
