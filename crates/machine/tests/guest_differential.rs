//! The guest-level differential suite: the same non-interactive commands run on QEMU
//! (OpenSBI, the same kernel, initrd, command line, memory and reduced ISA as `panda bench
//! boot` uses) and on pandare, and their outputs and exit statuses are compared line by
//! line. Only what legitimately differs between two machines is filtered ([`FILTERS`]),
//! and each busybox applet the guest has is either run by some command or excluded with
//! a reason ([`EXCLUDED`]).
//!
//! QEMU boots once and runs the commands in order in one shell; pandare boots once, takes
//! a snapshot at the prompt and goes back to it before each command (so the commands are
//! written to leave nothing behind that a later one could see). Both run at the same time.
//!
//! A failure names the first command that differs and its first differing line on each
//! side, then lists the other differing commands.

mod guest;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use guest::{guest_config, run_marked, unavailable, Outcome, Qemu};
use pandare::console::UNITS_PER_SECOND;
use pandare::Console;
use regex::Regex;

/// Each command: a shell line (a here document may follow on further lines).
const COMMANDS: &[&str] = &[
    // --- the counters (issue 15) and user-mode faults, through the probe program
    "time true",
    "busybox time true",
    "probe t; probe c; probe i; probe 3",
    "cat /proc/sys/kernel/perf_user_access",
    "echo 2 > /proc/sys/kernel/perf_user_access; probe c; probe i; probe t; probe 3; echo 1 > /proc/sys/kernel/perf_user_access",
    "echo 0 > /proc/sys/kernel/perf_user_access; probe t; probe c; echo 1 > /proc/sys/kernel/perf_user_access",
    "probe d",
    "probe f",
    "probe m",
    "probe a",
    "probe s",
    "probe w",
    "probe x",
    "probe b",
    "probe",
    // --- signals
    "sh -c 'kill -FPE $$'",
    "sh -c 'kill -SEGV $$'",
    "sh -c 'kill -ILL $$'",
    "sh -c 'kill -BUS $$'",
    "sh -c 'kill -ABRT $$'",
    "sh -c 'kill -TERM $$'",
    "sh -c 'kill -KILL $$'",
    "sh -c 'trap \"echo caught USR1\" USR1; kill -USR1 $$; trap \"echo leaving\" EXIT; echo body'",
    "sh -c 'trap \"echo caught INT; exit 7\" INT; kill -INT $$; echo not here'",
    "kill -l 9; kill -l | head -2; kill -0 1; echo $?",
    // An arithmetic error aborts the whole line in an interactive shell: run it in a child.
    "sh -c 'echo $((1/0))'",
    "awk 'BEGIN { print 1/0 }'",
    // --- shell features
    "echo $((2**10)) $((7/2)) $((-7%3)) $((1<<62)) $((0x10+010)) $((3>2?4:5)) $(( (1<<63) - 1 ))",
    "x=5; x=$((x*x)); echo $x; : $((x+=1)); echo $x",
    "echo a | cat | cat | wc -c; false | true; echo $?; (set -o pipefail; false | true; echo $?)",
    "cat <<EOF\nline $((1+2))\n  indented\nEOF",
    "cat <<'EOF'\n$HOME $((1+1))\nEOF",
    "sleep 0.1 & jobs; wait; echo waited",
    "sleep 0.1 & fg",
    "sleep 1 & kill %1; wait; echo status $?",
    "(exit 3); echo $?; ! true; echo $?",
    "f() { echo $# \"$@\"; return 4; }; f a 'b c' d; echo $?",
    "for i in 1 2 3; do case $i in 1) echo one;; 2) echo two;; *) echo other $i;; esac; done",
    "i=0; while [ $i -lt 5 ]; do i=$((i+1)); done; echo $i; until [ $i -eq 0 ]; do i=$((i-1)); done; echo $i",
    "v=/a/b/c.tar.gz; echo ${v##*/} ${v%.*} ${v#/a} ${#v} ${u:-default} ${v/b/B}",
    "printf 'x y z\\n' | { read a b c; echo $c$b$a; }; IFS=: read p q <<EOF\none:two\nEOF\necho $q",
    "set -- p q r; shift; echo $# $1 $*; echo \"$@\"",
    "[ 1 -lt 2 ] && echo yes; [[ abc == a* ]] && echo glob; test -e /nonexistent; echo $?; [ -z '' ]; echo $?",
    "true; echo $?; false; echo $?",
    "sh -c 'echo $0 $1' zero one; ash -c 'echo ash $((6*7))'",
    "echo -e 'a\\tb\\n' | od -c",
    "printf '%s|%5d|%-5s|%x|%o|%c|%%\\n' str 42 ab 255 8 Z",
    "printf '%.3f %e %g %g %G %.0f %.10f\\n' 3.14159 12345.678 0.0001 1e-5 1e20 2.5 0.1",
    "awk 'BEGIN { printf \"%.17g %.17g %.17g %.17g\\n\", 1/3, sqrt(2), exp(1), atan2(1, 1) * 4 }'",
    "awk 'BEGIN { print 2^53 + 1, -0, 1e308 * 10, -1e308 * 10, log(0), log(-1) }'",
    "awk 'BEGIN { x = sin(1); y = cos(1); print x*x + y*y, log(10), 1e-320, 2^-1074, int(-3.7), 7 % 3, -7 % 3, 0.1 + 0.2 }'",
    "awk 'BEGIN { printf \"%d %i %x %c %5.2f|%-8.3e|\\n\", 3.9, -3.9, 255, 65, 3.14159, 31415.9 }'",
    "awk 'BEGIN { srand(1); a = rand(); srand(1); print (a == rand()), (a >= 0 && a < 1) }'",
    "printf '3 4\\n5 6\\n' | awk '{ s += $1 * $2 } END { print s, NR, s / NR }'",
    "seq 0.5 0.25 1.5; printf '1e3\\n2.5\\n-1\\n0x10\\n' | sort -g",
    "echo 'scale=20; 4*a(1); e(1); l(2); s(1)^2+c(1)^2; sqrt(2)' | bc -l",
    "echo '2 64 ^ p 3 k 1 3 / p 16 o 255 p' | dc",
    // --- text processing
    "echo hello world | tr a-z A-Z; echo hello | tr -d l; echo aaabbb | tr -s ab",
    "printf 'b\\na\\nc\\na\\n' | sort | uniq -c; printf 'b\\na\\nc\\n' | sort -r | uniq",
    "printf 'one two\\nthree four\\n' | cut -d' ' -f2; printf 'abcdef\\n' | cut -c2-4",
    "seq 1 10 | paste -s -d+; seq -s, 0 3 12; seq 5 -1 1 | tac | head -2; seq 10 | tail -3",
    "printf 'hello\\nworld\\n' | rev; echo abc | fold -w1 | nl",
    "printf 'a\\tb\\n' | expand | od -c; printf 'a       b\\n' | unexpand -a | od -c",
    "printf 'ab\\ncd\\nab\\n' | grep -n ab; printf 'ab\\ncd\\n' | egrep 'a|c'; printf 'a.b\\naxb\\n' | fgrep a.b; grep -c x /dev/null; echo $?",
    "echo hello | sed 's/l/L/g;s/^/>/'; printf '1\\n2\\n3\\n' | sed -n '2p;$='",
    "printf 'a b\\nc\\n' | wc; printf 'abcdef' | head -c 3; echo; printf 'abcdef' | tail -c 2; echo",
    "printf '1 2 3' | xargs -n1 echo x; echo t | tee /tmp/tee-out | cat; cat /tmp/tee-out; rm /tmp/tee-out",
    "printf 'a\\r\\nb\\r\\n' | dos2unix | od -c; printf 'a\\n' | unix2dos | od -c",
    "printf 'ab\\001\\002hello world\\000xyz' | strings",
    "ascii | head -4",
    "echo -n ABC | hexdump -C; echo -n ABC | xxd; echo 414243 | xxd -r -p; echo; echo -n ABC | od -An -tx1 -c",
    "echo hello | base64; echo aGVsbG8K | base64 -d; echo hi | uuencode -m x; echo hi | uuencode x | uudecode -o /dev/stdout",
    "echo abc | md5sum; echo abc | sha1sum; echo abc | sha256sum; echo abc | sha512sum; echo abc | sha3sum; echo abc | crc32",
    "printf 'x\\ny\\n' > /tmp/d1; printf 'x\\nz\\n' > /tmp/d2; diff /tmp/d1 /tmp/d2 | tail -n +3; cmp /tmp/d1 /tmp/d2; echo $?; diff -u /tmp/d1 /tmp/d2 > /tmp/dp; patch /tmp/d1 < /tmp/dp; cat /tmp/d1; rm /tmp/d1 /tmp/d2 /tmp/dp",
    "printf 'one\\ntwo\\n' > /tmp/ed-file; printf '2s/two/TWO/\\nw\\nq\\n' | ed /tmp/ed-file; cat /tmp/ed-file; rm /tmp/ed-file",
    "getopt -o ab: -- -a -b x y; expr 7 \\* 6; expr length hello; expr 5 : '\\(.\\)'; factor 360 1000003",
    "yes | head -3; yes abc | head -1",
    "printf '%s\\n' 5 3 10 | sort -n | xargs; shuf -i 1-5 | sort -n | xargs; shuf -e a b c | sort | xargs",
    "cal 2 2024; date -u -d @1700000000; date -u -d '2020-02-29 12:00' '+%j %a %s'",
    "mkpasswd -m sha512 -S abcdefgh secret; mkpasswd -m md5 -S abcdefgh secret",
    "ipcalc -n -b -m 192.168.10.77/22",
    "echo hi | more; echo hi | less | cat",
    "clear | od -c",
    "echo '/* c */ int x;' > /tmp/m.c; mim 2>&1 | head -3; rm /tmp/m.c",
    // --- compression and archives
    "echo hello | gzip -c | gunzip -c; echo hello | gzip -n | zcat; echo hello | gzip -9n | od -An -tx1",
    "echo hello | bzip2 -c | bunzip2 -c; echo hello | bzip2 | bzcat; echo hello | bzip2 | od -An -tx1 | head -2",
    "echo /Td6WFoAAAFpIt42AgAhARYAAAB0L+WjAQAPY29tcHJlc3NlZCB0ZXh0CgAXfWVHAAEkEOlE2cyQQpkNAQAAAAABWVo= | base64 -d > /tmp/t.xz; xzcat /tmp/t.xz; unxz -c /tmp/t.xz; xz -dc /tmp/t.xz; rm /tmp/t.xz",
    "echo XQAAgAD//////////wAxm8nz9ryOxc4dV7roWouE6SJKm//+r+gA | base64 -d > /tmp/t.lzma; lzcat /tmp/t.lzma; unlzma -c /tmp/t.lzma; lzma -dc /tmp/t.lzma; rm /tmp/t.lzma",
    "echo hello | lzop | lzop -d; printf '\\037\\235\\220\\141\\024\\000' | uncompress",
    "echo UEsDBBQAAAAAAIMYIlAXfWVHEAAAABAAAAAFAAAAei50eHRjb21wcmVzc2VkIHRleHQKUEsBAhQDFAAAAAAAgxgiUBd9ZUcQAAAAEAAAAAUAAAAAAAAAAAAAAIABAAAAAHoudHh0UEsFBgAAAAABAAEAMwAAADMAAAAAAA== | base64 -d > /tmp/t.zip; unzip -p /tmp/t.zip; unzip -l /tmp/t.zip; rm /tmp/t.zip",
    "(mkdir -p /tmp/tt/x && echo a > /tmp/tt/x/f && cd /tmp && tar cf - tt | tar tf - && tar czf - tt | tar xzOf - tt/x/f && find tt | sort | cpio -o -H newc 2>/dev/null | cpio -t 2>&1; rm -r /tmp/tt)",
    "printf '!<arch>\\nf/              0           0     0     644     2         `\\na\\n' > /tmp/t.a; ar t /tmp/t.a; ar p /tmp/t.a f; rm /tmp/t.a",
    "dpkg-deb -c /dev/null; echo $?; rpm -qp /dev/null; echo $?; rpm2cpio /dev/null; echo $?; dpkg -l; echo $?",
    // --- files
    "(cd /tmp && mkdir -p f1/f2 && touch f1/f && ls -R f1 && rmdir f1/f2 && rm f1/f && rmdir f1 && echo gone)",
    "(cd /tmp && echo x > s && cp s c && mv c m && ln -s m l && link m h && readlink l && realpath l && unlink h && ls s m l && cat l && rm s m l)",
    "basename /a/b/c.txt .txt; dirname /a/b/c.txt; realpath -m /a/../b/./c",
    "(cd /tmp && printf abc > st && stat -c '%n %s %a %F %h' st && chmod 640 st && stat -c %a st && chown 1:2 st && chgrp 3 st && stat -c '%u %g' st && install -m 600 st st2 && stat -c %a st2; rm st st2)",
    "(cd /tmp && mkfifo ff && mknod nd c 1 3 && stat -c '%F %t %T' ff nd; rm ff nd)",
    "truncate -s 1000 /tmp/tr && stat -c %s /tmp/tr; fallocate -l 4096 /tmp/fa && stat -c %s /tmp/fa; rm /tmp/tr /tmp/fa",
    "dd if=/dev/zero bs=512 count=3 2>/dev/null | wc -c; dd if=/dev/zero of=/dev/null bs=1k count=2 2>&1 | head -2",
    "mkdir -p /tmp/du && dd if=/dev/zero of=/tmp/du/f bs=4096 count=3 2>/dev/null && du -k /tmp/du; rm -r /tmp/du",
    "find /proc/sys/kernel -maxdepth 1 -name 'os*' | sort; find / -maxdepth 1 -type d | sort",
    "which sh ls nonexistent; echo $?; sync; echo synced; (cd /proc/self && pwd)",
    "echo secret > /tmp/sh && shred -n 1 -z /tmp/sh && od -An -tx1 /tmp/sh; rm /tmp/sh",
    "d=$(mktemp -d) && test -d $d && echo made ${#d}; f=$(mktemp) && test -f $f && echo file ${#f}; rm -r $d $f",
    "getfattr -d /tmp; echo $?",
    "ls -ln /dev/null /dev/zero /dev/console | awk '{ print $1, $2, $3, $4, $5, $6, $NF }'; ls /",
    "(cd /tmp && mkdir rp && printf '#!/bin/sh\\necho ran\\n' > rp/a && chmod +x rp/a && run-parts rp && run-parts --test rp; rm -r rp)",
    // --- processes and the system
    "ps -o pid,comm | head -3; pidof nosuch; echo $?; killall -0 nosuch; echo $?",
    "sh -c 'renice -n 5 -p $$ > /dev/null; echo $?'; ionice -p 1; taskset -p 1",
    "setsid -w sh -c 'echo in a new session'; cttyhack echo via cttyhack; chroot / /bin/echo chrooted",
    "unshare -m echo unshared; nsenter -t 1 -m echo entered; setpriv --dump",
    "start-stop-daemon -S -x /bin/true; echo $?; start-stop-daemon -K -x /nonexistent; echo $?",
    "svok /nonexistent; echo $?; svc -u /nonexistent; echo $?",
    "nologin; echo $?",
    "logger test; echo $?; logread; echo $?; crontab -l; echo $?",
    "who; echo $?; last; echo $?",
    "timeout 1 sleep 5; echo $?; sleep 0.1; usleep 1000; echo slept",
    "nproc; arch; linux32 uname -m; linux64 uname -m",
    "uname -a; hostname; dnsdomainname; echo $?; hostid; id; groups; whoami; logname; echo $?",
    "tty; stty size; echo $?",
    "env | sort",
    "sysctl kernel.ostype kernel.osrelease kernel.pid_max vm.overcommit_memory",
    "mount | sort; umount /nonexistent; echo $?",
    "cat /proc/swaps; swapoff -a; echo $?; swapon -a; echo $?",
    "lsmod; modprobe nosuch; echo $?; insmod /nonexistent; echo $?; rmmod nosuch; echo $?; modinfo nosuch; echo $?; depmod; echo $?",
    "for c in 'blockdev --getsize64 /dev/null' 'blkdiscard /dev/null' 'fstrim /' 'fsfreeze -f /nonexistent' 'losetup -a' 'partprobe /dev/null' 'findfs LABEL=x' 'freeramdisk /dev/ram0' 'fatattr /tmp' 'fdisk -l' 'lsscsi' 'mt -f /dev/null status' 'ubirename /dev/null a b'; do $c; echo \"$c: $?\"; done",
    "i2cdetect -l; echo $?; i2cdump -y 0 0x50; echo $?; i2cget -y 0 0x50; echo $?; i2cset -y 0 0x50 0 0; echo $?; i2ctransfer -y 0 r1@0x50; echo $?",
    "ip link show lo; ifconfig lo | head -1; route -n; netstat -an | head -2; ipcalc 10.0.0.1",
    "busybox | head -1; busybox --list | wc -l",
    // --- /proc and /sys
    "cat /proc/version /proc/cmdline",
    "cat /proc/cpuinfo",
    "grep -E 'MemTotal|SwapTotal|HugePages_Total' /proc/meminfo",
    "cat /proc/filesystems; cat /proc/devices",
    "sort /proc/misc; cat /proc/consoles; cat /proc/partitions",
    "cat /proc/mounts",
    "cat /proc/sys/kernel/ostype /proc/sys/kernel/osrelease /proc/sys/kernel/pid_max /proc/sys/kernel/threads-max /proc/sys/kernel/randomize_va_space",
    "grep -E '^(Name|State|Umask|Threads|Cpus_allowed_list|Seccomp|NoNewPrivs|CapEff)' /proc/self/status; cat /proc/self/limits",
    "echo 0 > /proc/sys/kernel/randomize_va_space; cat /proc/self/maps; echo 2 > /proc/sys/kernel/randomize_va_space",
    // The kernel's own layout; the rest of the map names devices and firmware regions
    // that differ (QEMU's RTC, PCI and flash, OpenSBI's reserved memory).
    "grep -E 'Kernel|serial' /proc/iomem",
    // Without QEMU's RTC, which pandare's board does not have; counts depend on timing.
    "awk '!/rtc/ { print $1, $NF }' /proc/interrupts",
    "cat /sys/devices/system/cpu/online /sys/devices/system/cpu/possible /sys/devices/system/cpu/present",
    "ls /sys /sys/kernel /sys/bus /sys/class",
    "od -An -tx1 /sys/firmware/devicetree/base/cpus/timebase-frequency; cat /sys/firmware/devicetree/base/cpus/cpu@0/mmu-type; echo",
    "ls /sys/bus/event_source/devices; cat /sys/bus/event_source/devices/cpu/format/event /sys/bus/event_source/devices/cpu/type",
    "cat /proc/sys/kernel/perf_event_paranoid; ls /proc/sys/kernel | wc -l",
    // df's error and awk's output go through different pipes: keep them in one.
    "df -k / /dev 2>&1 | awk '{ print $1, $6 }'; free | head -1",
];

/// Busybox applets no command runs, and why.
const EXCLUDED: &[(&str, &str)] = &[
    // Need a network peer or change the network setup.
    ("arp", "network"),
    ("arping", "network"),
    ("brctl", "network: bridges need network devices"),
    ("dumpleases", "network: udhcpd's lease file"),
    ("ftpget", "network"),
    ("ftpput", "network"),
    ("httpd", "network server"),
    ("ifdown", "network configuration"),
    ("ifup", "network configuration"),
    ("nameif", "network devices"),
    ("nbd-client", "network"),
    ("nc", "network"),
    ("nslookup", "network"),
    ("ping", "network"),
    ("ping6", "network"),
    ("rdate", "network time"),
    ("ssl_client", "network"),
    ("tc", "network devices"),
    ("telnet", "network"),
    ("telnetd", "network server"),
    ("tftp", "network"),
    ("traceroute", "network"),
    ("traceroute6", "network"),
    ("tunctl", "network devices"),
    ("udhcpc", "network"),
    ("udhcpc6", "network"),
    ("udhcpd", "network server"),
    ("vconfig", "network devices"),
    ("wget", "network"),
    // Need a terminal, a virtual console or a user at the keyboard.
    ("chvt", "virtual console"),
    ("deallocvt", "virtual console"),
    ("dumpkmap", "virtual console keyboard"),
    ("getty", "interactive login on a terminal"),
    ("loadfont", "virtual console"),
    ("loadkmap", "virtual console keyboard"),
    ("login", "interactive"),
    ("microcom", "interactive serial terminal"),
    ("openvt", "virtual console"),
    ("passwd", "interactive"),
    ("reset", "resets the console terminal the suite reads"),
    ("setkeycodes", "virtual console keyboard"),
    ("su", "interactive"),
    ("sulogin", "interactive"),
    ("vi", "interactive full-screen editor"),
    // Never end by themselves, or start daemons that outlive the command.
    ("acpid", "daemon"),
    ("crond", "daemon"),
    ("klogd", "daemon"),
    ("syslogd", "daemon"),
    ("top", "runs until stopped; CPU percentages depend on host timing"),
    ("uevent", "runs until stopped"),
    ("watch", "runs until stopped"),
    ("watchdog", "daemon; would arm a watchdog"),
    // End the session or the machine.
    ("halt", "stops the machine"),
    ("init", "process 1 only"),
    ("linuxrc", "process 1 only"),
    ("nuke", "deletes a directory tree"),
    ("pivot_root", "replaces the root file system"),
    ("poweroff", "stops the machine"),
    ("reboot", "stops the machine"),
    ("resume", "resumes from hibernation"),
    ("run-init", "process 1 only"),
    ("switch_root", "process 1 only"),
    // Legitimately different between the two machines.
    ("dmesg", "the kernel log names the firmware and devices, which differ, with timestamps"),
    ("adjtimex", "prints the kernel clock's state, which depends on host time in QEMU"),
    ("devmem", "reads physical memory: QEMU's RAM starts with OpenSBI, pandare's with the kernel"),
    ("hwclock", "QEMU's virt board has an RTC (goldfish), pandare's has none (no host clock in the machine)"),
    ("mdev", "populates /dev from the devices, which differ (QEMU has flash, fw-cfg, RTC, virtio-mmio)"),
    ("mkdosfs", "writes a volume id taken from the clock"),
    ("mke2fs", "writes a random UUID"),
    ("mkswap", "writes a random UUID"),
    ("ts", "prefixes lines with the time"),
    ("uptime", "prints the time of day and uptime"),
    ("w", "prints the time of day and uptime"),
];

/// Output that legitimately differs, replaced on both sides before comparing:
/// (pattern, replacement, why).
const FILTERS: &[(&str, &str, &str)] = &[
    (
        r"(?m)^(MemTotal:\s+)\d+ kB$|size=\d+k,nr_inodes=\d+",
        "$1<memory>",
        "OpenSBI keeps the start of RAM for itself, so QEMU's kernel has 384 KiB less memory (and tmpfs sizes follow from it)",
    ),
    (
        r"(?m)^(real|user|sys)\s+\d+m \d+\.\d+s$",
        "$1 <time>",
        "`time` measures host-speed-dependent durations",
    ),
    (
        r"(?m)^[0-9a-f]{16} [0-9a-f]{16} (same|increased|decreased)$",
        "<counter> <counter> $1",
        "counter values depend on how many instructions OpenSBI and the kernel ran",
    ),
    (
        r"(?m)^\[(\d+)\] \d+$",
        "[$1] <pid>",
        "an interactive shell prints the PID of a background job; QEMU's shell has run the earlier commands, pandare's starts each from the same snapshot",
    ),
];

/// Guest seconds (pandare) or wall seconds (QEMU) one command may take.
const COMMAND_LIMIT: u64 = 30;

fn filter(text: &str) -> String {
    let mut text = text.to_string();
    for (pattern, replacement, _) in FILTERS {
        text = Regex::new(pattern)
            .unwrap()
            .replace_all(&text, *replacement)
            .into_owned();
    }
    text
}

fn show_status(status: Option<u32>) -> String {
    status.map_or_else(|| "none (did not finish)".to_string(), |s| s.to_string())
}

/// How `qemu` and `ours` differ after filtering, or `None`.
fn difference(qemu: &Outcome, ours: &Outcome) -> Option<String> {
    let (a, b) = (filter(&qemu.output), filter(&ours.output));
    if a == b && qemu.status == ours.status {
        return None;
    }
    if a == b {
        return Some(format!(
            "exit status: QEMU {}, pandare {}",
            show_status(qemu.status),
            show_status(ours.status)
        ));
    }
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let line = (0..a.len().max(b.len()))
        .find(|&i| a.get(i) != b.get(i))
        .unwrap_or(0);
    let show = |lines: &Vec<&str>| {
        lines
            .get(line)
            .map_or_else(|| "(no such line)".to_string(), |l| format!("{l:?}"))
    };
    Some(format!(
        "first differing line {}:\n    QEMU:    {}\n    pandare: {}\n  (exit status: QEMU {}, pandare {})",
        line + 1,
        show(&a),
        show(&b),
        show_status(qemu.status),
        show_status(ours.status)
    ))
}

/// Applets no command mentions and no exclusion covers.
fn uncovered(applets: &[&str]) -> Vec<String> {
    applets
        .iter()
        .filter(|applet| !EXCLUDED.iter().any(|(name, _)| name == *applet))
        .filter(|applet| {
            let word = Regex::new(&format!(
                r"(^|[^A-Za-z0-9_.-]){}($|[^A-Za-z0-9_-])",
                regex::escape(applet)
            ))
            .unwrap();
            !COMMANDS.iter().any(|command| word.is_match(command))
        })
        .map(|applet| applet.to_string())
        .collect()
}

#[test]
fn filters_only_touch_what_they_name() {
    assert_eq!(filter("real\t0m 0.03s\nrc=0"), "real <time>\nrc=0");
    assert_eq!(
        filter("00000000258980ba 00000000258980ba same"),
        "<counter> <counter> same"
    );
    assert_eq!(filter("[1] 1234\n[1]+ Done"), "[1] <pid>\n[1]+ Done");
    assert_eq!(
        filter("0000000000000007 increased!"),
        "0000000000000007 increased!"
    );
}

#[test]
fn the_first_difference_names_the_line() {
    let qemu = Outcome {
        output: "a\nb\n".into(),
        status: Some(0),
    };
    let ours = Outcome {
        output: "a\nc\n".into(),
        status: Some(1),
    };
    let text = difference(&qemu, &ours).unwrap();
    assert!(text.contains("line 2") && text.contains("\"b\"") && text.contains("\"c\""));
    assert!(text.contains("QEMU 0, pandare 1"), "{text}");
    assert_eq!(difference(&qemu, &qemu), None);
}

#[test]
fn every_exclusion_is_a_real_applet_not_also_run() {
    for (applet, reason) in EXCLUDED {
        assert!(!reason.is_empty());
        // In command position: at the start, or after `;`, `|`, `&` or `(`.
        let word = Regex::new(&format!(r"(^|[;|&(]\s*){}(\s|$)", regex::escape(applet))).unwrap();
        let running = COMMANDS.iter().find(|command| word.is_match(command));
        assert!(
            running.is_none(),
            "{applet} is excluded but run by {running:?}"
        );
    }
}

#[test]
fn qemu_and_pandare_agree_on_every_command() {
    let config = match guest_config() {
        Ok(config) => config,
        Err(reason) => return unavailable(&reason),
    };
    let started = Instant::now();
    let limit = Duration::from_secs(COMMAND_LIMIT);
    let listing = "busybox --list";
    let (qemu_results, (ours, applets)) = std::thread::scope(|scope| {
        let qemu = scope.spawn(|| {
            let start = Instant::now();
            let mut qemu = Qemu::boot(&config, Duration::from_secs(180))?;
            let booted = start.elapsed().as_secs_f64();
            let mut results = Vec::new();
            for (index, command) in COMMANDS.iter().enumerate() {
                let before = Instant::now();
                results.push(qemu.run(index, command, limit));
                let took = before.elapsed().as_secs_f64();
                if took > 2.0 {
                    eprintln!("QEMU: command {index} took {took:.1} s");
                }
            }
            eprintln!(
                "QEMU: boot {booted:.1} s, commands {:.1} s",
                start.elapsed().as_secs_f64() - booted
            );
            Ok::<_, String>(results)
        });
        let start = Instant::now();
        let mut console = Console::new(config.build().unwrap(), config.prompt_regex().unwrap());
        console.wait_for_prompt(180 * UNITS_PER_SECOND).unwrap();
        let booted = start.elapsed().as_secs_f64();
        let root = console.save_snapshot();
        let applets = run_marked(&mut console, COMMANDS.len(), listing, COMMAND_LIMIT);
        let mut ours = Vec::new();
        for (index, command) in COMMANDS.iter().enumerate() {
            console.load_snapshot(&root).unwrap();
            let before = Instant::now();
            ours.push(run_marked(&mut console, index, command, COMMAND_LIMIT));
            let took = before.elapsed().as_secs_f64();
            if took > 2.0 {
                eprintln!("pandare: command {index} took {took:.1} s");
            }
        }
        eprintln!(
            "pandare: boot {booted:.1} s, commands {:.1} s",
            start.elapsed().as_secs_f64() - booted
        );
        // Deterministic on our side: the first command again gives the same output.
        console.load_snapshot(&root).unwrap();
        let again = run_marked(&mut console, 0, COMMANDS[0], COMMAND_LIMIT);
        assert_eq!(
            again, ours[0],
            "pandare ran {:?} differently twice",
            COMMANDS[0]
        );
        (qemu.join().unwrap(), (ours, applets))
    });
    let qemu_results = match qemu_results {
        Ok(results) => results,
        // Missing tools skip (or fail under CI); a QEMU that is there but fails, fails.
        Err(reason) if !guest::qemu_installed() => return unavailable(&reason),
        Err(reason) => panic!("the QEMU reference machine failed: {reason}"),
    };
    let seconds = started.elapsed().as_secs_f64();

    let mut report = String::new();
    let mut differing = 0;
    for (index, (command, (qemu, ours))) in COMMANDS
        .iter()
        .zip(qemu_results.iter().zip(&ours))
        .enumerate()
    {
        if let Some(what) = difference(qemu, ours) {
            differing += 1;
            if differing == 1 {
                let _ = writeln!(
                    report,
                    "FIRST DIFFERENCE: command {index} `{command}`\n  {what}\n--- QEMU output:\n{}\n--- pandare output:\n{}\n",
                    qemu.output, ours.output
                );
            } else {
                let _ = writeln!(report, "also command {index} `{command}`:\n  {what}");
            }
        }
    }
    eprintln!("{report}");
    let applets: Vec<&str> = applets.output.split_whitespace().collect();
    assert!(applets.len() > 200, "busybox --list gave {applets:?}");
    let missing = uncovered(&applets);
    assert!(
        missing.is_empty(),
        "busybox applets neither run by a command nor excluded with a reason: {missing:?}"
    );

    eprintln!(
        "{} commands, {} busybox applets ({} excluded), {seconds:.1} s",
        COMMANDS.len(),
        applets.len(),
        EXCLUDED.len()
    );
    assert!(
        differing == 0,
        "{differing} of {} commands differ between QEMU and pandare\n{report}",
        COMMANDS.len()
    );
}
