//! Bad input to the plugin manager: every mistake is an error that says what exists, and a
//! failed load leaves nothing behind. No guest is needed.

use pandare_core::instrument::{Callback, Instrumentation};
use pandare_plugins::stringsearch::StringMatch;
use pandare_plugins::{PluginError, Plugins, PppEvent, PppValue};

/// An event type no plugin passes.
struct Other;

impl PppEvent for Other {
    fn values(&self) -> Vec<PppValue> {
        Vec::new()
    }
}

fn load_error(spec: &str) -> String {
    let mut instrumentation = Instrumentation::new();
    let error = Plugins::new()
        .load_spec(&mut instrumentation, spec)
        .expect_err(spec);
    assert!(
        instrumentation.list().is_empty(),
        "a failed load of {spec} left callbacks: {:?}",
        instrumentation.list()
    );
    error.to_string()
}

#[test]
fn unknown_plugins_arguments_and_malformed_specs_are_explained() {
    let unknown = load_error("covrage");
    assert!(
        unknown.contains("no plugin called \"covrage\""),
        "{unknown}"
    );
    for name in ["asid_instr_count", "coverage", "pc_search", "stringsearch"] {
        assert!(unknown.contains(name), "{unknown}");
    }
    let argument = load_error("coverage:file=x.csv");
    assert!(argument.contains("no argument \"file\""), "{argument}");
    assert!(argument.contains("filename, mode, full"), "{argument}");
    assert!(load_error("asid_instr_count:x=1").contains("accepts filename"));
    assert!(load_error("coverage:filename").contains("has no '='"));
    assert!(load_error("coverage:full=maybe").contains("\"maybe\" is not true or false"));
    assert!(load_error("coverage:mode=osi-block").contains("OS introspection"));
    assert!(load_error("coverage:privilege=root").contains("neither user nor kernel"));
    assert!(load_error("coverage:pc=10").contains("not START-END"));
    assert!(load_error("coverage:filename=x,filename=y").contains("given twice"));
    assert!(load_error("pc_search").contains("no pc to search for"));
    assert!(load_error("pc_search:pc=0xzz").contains("is not a number"));
    assert!(load_error("pc_search:pc_file=/nonexistent/pcs").contains("cannot read"));
    let nothing = load_error("stringsearch:name=/nonexistent/x");
    assert!(nothing.contains("give str=TEXT or file=FILE"), "{nothing}");
    assert!(load_error("coverage:filename=/nonexistent/dir/c.csv").contains("cannot write"));
}

#[test]
fn strings_files_are_checked_line_by_line() {
    let path = std::env::temp_dir().join(format!("pandare-strings-{}.txt", std::process::id()));
    std::fs::write(&path, "\"fine\"\nde:ad\nnot quoted\n").unwrap();
    let error = load_error(&format!("stringsearch:file={}", path.display()));
    assert!(error.contains("line 3"), "{error}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn loading_twice_unloading_what_is_not_loaded_and_ppp_mistakes_are_errors() {
    let mut instrumentation = Instrumentation::new();
    let mut plugins = Plugins::new();
    instrumentation
        .register("mine", Callback::TopLoop(Box::new(|_| {})))
        .unwrap();
    plugins
        .load_spec(&mut instrumentation, "asid_instr_count")
        .unwrap();
    assert!(matches!(
        plugins.load_spec(&mut instrumentation, "asid_instr_count"),
        Err(PluginError::AlreadyLoaded { .. })
    ));
    assert_eq!(plugins.loaded(), ["asid_instr_count"]);
    let names: Vec<String> = instrumentation.list().into_iter().map(|c| c.0).collect();
    assert_eq!(
        names,
        ["mine", "asid_instr_count:before", "asid_instr_count:after"]
    );

    let not_loaded = plugins
        .unload(&mut instrumentation, "coverage")
        .unwrap_err()
        .to_string();
    assert!(
        not_loaded.contains("not loaded (loaded: asid_instr_count)"),
        "{not_loaded}"
    );
    assert!(matches!(
        plugins.unload(&mut instrumentation, "nosuch"),
        Err(PluginError::UnknownPlugin { .. })
    ));

    // Unloading removes exactly the plugin's callbacks.
    let report = plugins
        .unload(&mut instrumentation, "asid_instr_count")
        .unwrap();
    assert!(
        report.starts_with("asid_instr_count: 0 instructions"),
        "{report}"
    );
    let names: Vec<String> = instrumentation.list().into_iter().map(|c| c.0).collect();
    assert_eq!(names, ["mine"]);
    assert!(plugins.unload_all(&mut instrumentation).unwrap().is_empty());

    let ppp = plugins
        .register_ppp_values("stringsearch", "on_match", "x", |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        ppp.contains("no PPP callback \"on_match\"; it offers: on_ssm"),
        "{ppp}"
    );
    assert!(plugins
        .register_ppp_values("coverage", "on_ssm", "x", |_, _| {})
        .unwrap_err()
        .to_string()
        .contains("it offers: none"));
    assert!(matches!(
        plugins.register_ppp("stringsearch", "on_ssm", "typed", |_, _: &Other| {}),
        Err(PluginError::PppType { .. })
    ));
    plugins
        .register_ppp("stringsearch", "on_ssm", "typed", |_, _: &StringMatch| {})
        .unwrap();
    assert!(matches!(
        plugins.register_ppp_values("stringsearch", "on_ssm", "typed", |_, _| {}),
        Err(PluginError::DuplicatePpp { .. })
    ));
    assert!(plugins.remove_ppp("typed"));
    assert!(!plugins.remove_ppp("typed"));
}

mod own_plugin {
    //! The example of docs/plugins.md, "Writing a plugin in Rust".
    use pandare_core::instrument::{Callback, Instrumentation};
    use pandare_plugins::{ArgInfo, Args, LoadContext, Plugin, PluginError, PluginInfo, Plugins};
    use std::sync::{Arc, Mutex};

    pub const BLOCK_COUNT: PluginInfo = PluginInfo {
        name: "block_count",
        description: "counts the blocks run in kernel mode",
        arguments: &[ArgInfo {
            name: "every",
            help: "print a line every N blocks (default never)",
        }],
        ppp: &[],
        create,
    };

    struct BlockCount(Arc<Mutex<u64>>);

    fn create(args: &Args, context: &mut LoadContext<'_>) -> Result<Box<dyn Plugin>, PluginError> {
        let every = args.u64("every")?;
        let count = Arc::new(Mutex::new(0u64));
        let shared = Arc::clone(&count);
        context.register(
            "blocks",
            Callback::BeforeBlockExec(Box::new(move |cpu, block| {
                if cpu.in_kernel_mode() {
                    let mut count = shared.lock().unwrap();
                    *count += 1;
                    if every.is_some_and(|n| (*count).is_multiple_of(n)) {
                        eprintln!("block_count: {} at {:#x}", *count, block.pc);
                    }
                }
            })),
        )?;
        Ok(Box::new(BlockCount(count)))
    }

    impl Plugin for BlockCount {
        fn unload(&mut self) -> Result<String, PluginError> {
            Ok(format!(
                "block_count: {} kernel blocks",
                self.0.lock().unwrap()
            ))
        }
    }

    #[test]
    fn a_plugin_of_ones_own_loads_and_unloads() {
        let mut instrumentation = Instrumentation::new();
        let mut plugins = Plugins::new();
        plugins.add_plugin(BLOCK_COUNT);
        assert!(plugins
            .load_spec(&mut instrumentation, "block_count:every=x")
            .unwrap_err()
            .to_string()
            .contains("block_count, argument every"));
        plugins
            .load_spec(&mut instrumentation, "block_count:every=1000000")
            .unwrap();
        assert_eq!(instrumentation.list()[0].0, "block_count:blocks");
        assert_eq!(
            plugins.unload_all(&mut instrumentation).unwrap(),
            ["block_count: 0 kernel blocks"]
        );
    }
}

#[test]
fn plugins_load_and_unload_through_a_controller_while_the_machine_runs() {
    let mut instrumentation = Instrumentation::new();
    let controller = instrumentation.controller();
    let mut plugins = Plugins::new();
    plugins.load_spec(&controller, "asid_instr_count").unwrap();
    assert!(instrumentation.list().is_empty(), "queued, not yet applied");
    instrumentation.apply_pending();
    assert_eq!(instrumentation.list().len(), 2);
    assert_eq!(
        plugins.callback_names(),
        ["asid_instr_count:before", "asid_instr_count:after"]
    );
    plugins.unload(&controller, "asid_instr_count").unwrap();
    instrumentation.apply_pending();
    assert!(instrumentation.list().is_empty());
    assert!(instrumentation.take_errors().is_empty());
}

#[test]
fn check_validates_values_without_writing_anything() {
    let directory = std::env::temp_dir().join(format!("pandare-check-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let csv = directory.join("c.csv");
    let plugins = Plugins::new();
    let pairs = |text: &str| pandare_plugins::parse_spec(text).unwrap().1;
    plugins
        .check(
            "coverage",
            pairs(&format!("coverage:filename={}", csv.display())),
        )
        .unwrap();
    assert!(plugins
        .check("stringsearch", pairs("s:name=/nonexistent/x"))
        .is_err());
    assert!(plugins.check("pc_search", pairs("p:pc=12")).is_ok());
    assert!(plugins.check("nosuch", []).is_err());
    assert_eq!(
        std::fs::read_dir(&directory).unwrap().count(),
        0,
        "check wrote a file"
    );
    std::fs::remove_dir_all(&directory).unwrap();
}
