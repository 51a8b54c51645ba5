//! A better default service name than the executable's basename, for the
//! runtimes whose executable says nothing about the application (OBI names
//! Node-RED `node`, every Python script `python3.11`, every JVM `java`):
//!
//! - Node.js: the `name` of the nearest `package.json` above the script
//!   (Node-RED's `red.js` is in the `node-red` package), else the script's
//!   basename without extension; when the application set its process title
//!   (`process.title = "node-red"` overwrites the command line), that title;
//! - Python: the module of `-m` (`python3 -m http.server` -> `http.server`),
//!   else the script's basename without `.py` (`app.py` -> `app`; a
//!   package's `__main__.py` -> the package directory);
//! - Java: the jar of `-jar` without `.jar`, else the main class without
//!   its package (as `jps` shows it), else the module's main class.
//!
//! Anything else, or a command line we cannot read (`-c`, `-e`, a REPL), has
//! no such name and keeps the executable's basename.

use std::path::{Path, PathBuf};

/// Directories walked up from a Node.js script looking for `package.json`.
const MAX_PACKAGE_DEPTH: usize = 8;

/// Reads files of the process's file system (`/proc/<pid>/root/...` for a
/// real process) and resolves its relative paths.
pub(crate) trait ProcessFiles {
    /// The contents of `path` (absolute, as the process sees it), if readable.
    fn read(&self, path: &Path) -> Option<String>;
    /// The target of a symbolic link, if `path` is one.
    fn read_link(&self, path: &Path) -> Option<PathBuf>;
    /// The process's working directory.
    fn cwd(&self) -> Option<PathBuf>;
}

/// The files of a live process, through `/proc/<pid>` (its own mount
/// namespace included).
pub(crate) struct ProcFiles(pub(crate) u32);

impl ProcFiles {
    fn host_path(&self, path: &Path) -> PathBuf {
        let root = PathBuf::from(format!("/proc/{}/root", self.0));
        root.join(path.strip_prefix("/").unwrap_or(path))
    }
}

impl ProcessFiles for ProcFiles {
    fn read(&self, path: &Path) -> Option<String> {
        use std::io::Read;
        // package.json files are small; a huge one is not read whole.
        let mut text = String::new();
        std::fs::File::open(self.host_path(path)).ok()?.take(1 << 20).read_to_string(&mut text).ok()?;
        Some(text)
    }
    fn read_link(&self, path: &Path) -> Option<PathBuf> {
        std::fs::read_link(self.host_path(path)).ok()
    }
    fn cwd(&self) -> Option<PathBuf> {
        std::fs::read_link(format!("/proc/{}/cwd", self.0)).ok()
    }
}

/// The application's name from its command line, or `None` (see the module
/// docs). `exe_name` is the executable's basename.
pub(crate) fn app_name(exe_name: &str, argv: &[String], files: &dyn ProcessFiles) -> Option<String> {
    // A process title set by the program blanks the rest of the command line.
    let args: Vec<String> = argv.iter().skip(1).filter(|a| !a.is_empty()).cloned().collect();
    let args = args.as_slice();
    // Chosen by the runtime's executable, not the detected language: the
    // language of a process read just as it exec'd can still be its
    // parent's (a Python launcher exec'ing `busybox httpd` was named `httpd`
    // by the Python rule), it can be unsettled for a young process, and a
    // program embedding a runtime has no script on its command line.
    let name = if exe_name.starts_with("node") {
        match node_script(args) {
            Some(script) => node_name(&absolute(script, files)?, files),
            None => node_title(argv.first()?, exe_name),
        }
    } else if exe_name.starts_with("python") {
        python_name(args)
    } else if exe_name == "java" {
        java_name(args)
    } else {
        None
    };
    name.filter(|n| !n.is_empty())
}

fn absolute(script: &str, files: &dyn ProcessFiles) -> Option<PathBuf> {
    let path = Path::new(script);
    if path.is_absolute() { Some(path.to_path_buf()) } else { Some(files.cwd()?.join(path)) }
}

/// The script `node` runs: the first argument that is not an option (nor an
/// option's value). `-e`/`-p` run code, not a script.
fn node_script(args: &[String]) -> Option<&str> {
    const WITH_VALUE: &[&str] =
        &["-r", "--require", "--import", "--loader", "--experimental-loader", "--env-file", "-C", "--conditions"];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-e" | "--eval" | "-p" | "--print" | "-i" | "--interactive" => return None,
            "--" => return it.next().map(String::as_str),
            a if WITH_VALUE.contains(&a) => {
                it.next();
            }
            a if a.starts_with('-') => {}
            a => return Some(a),
        }
    }
    None
}

/// The title a Node.js program gave itself: an `argv[0]` that is not the
/// executable (`node`, `/usr/bin/node`, `nodejs`).
fn node_title(argv0: &str, exe_name: &str) -> Option<String> {
    let base = Path::new(argv0).file_name()?.to_str()?;
    let title = argv0.trim();
    (!title.is_empty() && !title.contains('/') && ![exe_name, "node", "nodejs"].contains(&base))
        .then(|| title.to_string())
}

/// The nearest `package.json` name above `script` (following the script's
/// symbolic link once: `/usr/bin/node-red` -> `.../node-red/red.js`), else
/// the script's basename.
fn node_name(script: &Path, files: &dyn ProcessFiles) -> Option<String> {
    let target = files.read_link(script).map(|t| match script.parent() {
        Some(dir) if t.is_relative() => dir.join(t),
        _ => t,
    });
    let script = normalize(target.as_deref().unwrap_or(script));
    let script = script.as_path();
    package_name(script, files).or_else(|| stem(script, &[".js", ".mjs", ".cjs"]))
}

fn package_name(script: &Path, files: &dyn ProcessFiles) -> Option<String> {
    for dir in script.ancestors().skip(1).take(MAX_PACKAGE_DEPTH) {
        let Some(text) = files.read(&dir.join("package.json")) else { continue };
        let name = serde_json::from_str::<serde_json::Value>(&text).ok()?["name"].as_str()?.to_string();
        // `@scope/name` -> `name`.
        return Some(name.rsplit('/').next().unwrap_or(&name).to_string());
    }
    None
}

/// `path` with `.` and `..` resolved lexically (a link's target is relative
/// to the link's directory).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The basename of `path` without the first of `extensions` it ends with.
fn stem(path: &Path, extensions: &[&str]) -> Option<String> {
    let base = path.file_name()?.to_str()?;
    let base = extensions.iter().find_map(|e| base.strip_suffix(e)).unwrap_or(base);
    Some(base.to_string())
}

fn python_name(args: &[String]) -> Option<String> {
    const WITH_VALUE: &[&str] = &["-W", "-X", "--check-hash-based-pycs"];
    const PLAIN_FLAGS: &str = "bBdEhiIOPqsSuvVxR";
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-m" => return it.next().cloned(),
            "-c" | "-" => return None,
            a if WITH_VALUE.contains(&a) => {
                it.next();
            }
            // Flags may be bundled (`-um app`, `-uc code`, `-mapp`): the
            // first of `m` or `c` after flags without values ends the bundle.
            a if a.starts_with('-') && !a.starts_with("--") => {
                let flags = &a[1..];
                let plain = flags.find(|c: char| !PLAIN_FLAGS.contains(c)).unwrap_or(flags.len());
                if flags[plain..].starts_with(['m', 'c']) {
                    let i = plain;
                    let rest = &flags[i + 1..];
                    return match &flags[i..=i] {
                        "c" => None,
                        _ if !rest.is_empty() => Some(rest.to_string()),
                        _ => it.next().cloned(),
                    };
                }
            }
            a if a.starts_with('-') => {}
            script => {
                let path = Path::new(script);
                if path.file_name().is_some_and(|f| f == "__main__.py") {
                    return path.parent()?.file_name()?.to_str().map(str::to_string);
                }
                return stem(path, &[".py"]);
            }
        }
    }
    None
}

fn java_name(args: &[String]) -> Option<String> {
    const WITH_VALUE: &[&str] = &[
        "-cp",
        "-classpath",
        "--class-path",
        "-p",
        "--module-path",
        "--upgrade-module-path",
        "--add-modules",
        "--add-reads",
        "--add-exports",
        "--add-opens",
        "--limit-modules",
        "--patch-module",
        "--enable-native-access",
    ];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-jar" => return it.next().and_then(|jar| stem(Path::new(jar), &[".jar"])),
            "-m" | "--module" => {
                // `module/main.Class` -> `Class`; a module alone -> the module.
                let m = it.next()?;
                let class = m.split_once('/').map_or(m.as_str(), |(_, c)| c);
                return Some(class.rsplit('.').next().unwrap_or(class).to_string());
            }
            a if WITH_VALUE.contains(&a) => {
                it.next();
            }
            a if a.starts_with('-') => {}
            class => return Some(class.rsplit('.').next().unwrap_or(class).to_string()),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A file system in memory.
    #[derive(Default)]
    struct Files {
        files: HashMap<PathBuf, String>,
        links: HashMap<PathBuf, PathBuf>,
        cwd: Option<PathBuf>,
    }

    impl ProcessFiles for Files {
        fn read(&self, path: &Path) -> Option<String> {
            self.files.get(path).cloned()
        }
        fn read_link(&self, path: &Path) -> Option<PathBuf> {
            self.links.get(path).cloned()
        }
        fn cwd(&self) -> Option<PathBuf> {
            self.cwd.clone()
        }
    }

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn name(exe: &str, cmd: &str, files: &Files) -> Option<String> {
        app_name(exe, &argv(cmd), files)
    }

    #[test]
    fn node_package_names() {
        let mut f = Files::default();
        f.files.insert("/opt/apps/node_modules/node-red/package.json".into(), r#"{"name":"node-red"}"#.into());
        f.files.insert("/srv/shop/package.json".into(), r#"{"name": "@acme/shop-api", "version": "1.0.0"}"#.into());
        f.links.insert("/usr/bin/node-red".into(), "../../opt/apps/node_modules/node-red/red.js".into());
        f.cwd = Some("/srv/shop".into());
        let n = |cmd| name("node", cmd, &f);
        assert_eq!(n("node /opt/apps/node_modules/node-red/red.js -u /data").as_deref(), Some("node-red"));
        assert_eq!(n("node --max-old-space-size=128 /usr/bin/node-red").as_deref(), Some("node-red"));
        // Relative to the working directory; nested sources; scope dropped.
        assert_eq!(n("node -r dotenv/config dist/src/server.js").as_deref(), Some("shop-api"));
        // No package.json: the script's basename.
        assert_eq!(n("node --inspect /tmp/x/worker.mjs").as_deref(), Some("worker"));
        assert_eq!(n("node -- /tmp/app.js").as_deref(), Some("app"));
        // Code on the command line, a REPL: nothing better than `node`.
        assert_eq!(n("node -e require('http')"), None);
        assert_eq!(n("node"), None);
        assert_eq!(n("node --inspect"), None);
        assert_eq!(n("/usr/bin/node"), None);
        assert_eq!(n("nodejs"), None);
    }

    #[test]
    fn node_process_titles() {
        let f = Files::default();
        // Node-RED sets `process.title`: the command line becomes the title
        // and NULs (empty arguments).
        let titled: Vec<String> = ["node-red", "", "", ""].iter().map(|s| s.to_string()).collect();
        assert_eq!(app_name("node", &titled, &f).as_deref(), Some("node-red"));
        // An empty argument is never a script (it would name the process
        // after its working directory).
        let blank: Vec<String> = ["node", "", ""].iter().map(|s| s.to_string()).collect();
        assert_eq!(app_name("node", &blank, &f), None);
    }

    #[test]
    fn broken_package_json_falls_back_to_the_script() {
        let mut f = Files::default();
        f.files.insert("/a/package.json".into(), "{not json".into());
        f.files.insert("/b/package.json".into(), r#"{"version":"1"}"#.into());
        assert_eq!(name("node", "node /a/main.js", &f).as_deref(), Some("main"));
        assert_eq!(name("node", "node /b/main.js", &f).as_deref(), Some("main"));
    }

    #[test]
    fn python_scripts_and_modules() {
        let f = Files::default();
        let n = |cmd| name("python3.11", cmd, &f);
        assert_eq!(n("python3 app.py --port 80").as_deref(), Some("app"));
        assert_eq!(n("/usr/bin/python3 -u /srv/tests/http_server.py 8080").as_deref(), Some("http_server"));
        assert_eq!(n("python3 -m http.server 8000").as_deref(), Some("http.server"));
        assert_eq!(n("python3 -um foo").as_deref(), Some("foo"));
        assert_eq!(n("python3 -mfoo").as_deref(), Some("foo"));
        assert_eq!(n("python3 -W ignore -X dev svc.py").as_deref(), Some("svc"));
        assert_eq!(n("python3 -Xfrozen_modules=off -Wdefault svc.py").as_deref(), Some("svc"));
        assert_eq!(n("python3 /srv/mypkg/__main__.py").as_deref(), Some("mypkg"));
        // gunicorn and friends are scripts too.
        assert_eq!(n("/usr/bin/python3 /usr/bin/gunicorn app:app").as_deref(), Some("gunicorn"));
        assert_eq!(n("python3 -c print(1)"), None);
        assert_eq!(n("python3 -uc print(1)"), None);
        assert_eq!(n("python3"), None);
    }

    #[test]
    fn java_jars_and_classes() {
        let f = Files::default();
        let n = |cmd| name("java", cmd, &f);
        assert_eq!(n("java -Xmx512m -jar /opt/app/orders-1.2.jar --server.port=8080").as_deref(), Some("orders-1.2"));
        assert_eq!(
            n("java -cp /tmp/classes:/lib/x.jar com.example.FanoutServer 8080").as_deref(),
            Some("FanoutServer")
        );
        assert_eq!(n("java -Dx=y FanoutServer").as_deref(), Some("FanoutServer"));
        assert_eq!(n("java -p mods -m com.acme.app/com.acme.app.Main").as_deref(), Some("Main"));
        assert_eq!(n("java --version"), None);
    }

    #[test]
    fn other_runtimes_keep_the_executable_name() {
        let f = Files::default();
        assert_eq!(name("influxd", "influxd run", &f), None);
        assert_eq!(name("mosquitto", "mosquitto -c /etc/m.conf", &f), None);
    }
}
