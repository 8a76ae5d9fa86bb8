//! The step kinds e3pipe ships, one module each (see `pipeline::kind` for what a kind defines).

pub mod aggregate;
pub mod bench;
pub mod plot;

use crate::pipeline::kind::Registry;

/// Every built-in kind, in the order messages list them.
pub fn builtin() -> Registry {
    Registry::new(vec![&bench::Bench, &aggregate::Aggregate, &plot::Plot])
}

#[cfg(test)]
mod noop;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::plan::{Force, plan};
    use crate::pipeline::spec::Pipeline;
    use crate::pipeline::{execute, graph};

    const PIPELINE: &str = "steps:\n  - {name: later, kind: noop, needs: hello}\n  - {name: hello, kind: noop, message: hi}\n";

    #[test]
    fn a_new_kind_is_one_module_and_one_registration() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.yaml");
        std::fs::write(&file, PIPELINE).unwrap();

        // Unregistered, it is an unknown kind, and the message lists what is registered.
        let err = Pipeline::load(&file).unwrap_err().to_string();
        assert!(
            err.contains("unknown kind `noop` (expected `bench`, `aggregate` or `plot`)"),
            "{err}"
        );

        let registry = builtin().with(&noop::Noop);
        let pipeline = Pipeline::load_with(&file, &registry).unwrap();
        assert!(graph::render_text(&pipeline).contains("hello  [noop: says `hi`]"));
        let plan = plan(&pipeline, &[], &Force::default()).unwrap();
        assert_eq!(
            plan.render(&crate::pipeline::executor::Local),
            "step `hello` (noop): nothing to do\nstep `later` (noop): nothing to do\n"
        );
        let outcome = execute::execute(&plan, &crate::pipeline::executor::Local).unwrap();
        assert!(outcome.failed_steps.is_empty());
        assert_eq!(*noop::RAN.lock().unwrap(), ["hello", "later"]);

        // Its keys are validated like any kind's, and messages listing kinds include it.
        std::fs::write(&file, "steps:\n  - {name: a, kind: noop, mesage: hi}\n").unwrap();
        let err = Pipeline::load_with(&file, &registry)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown key `mesage`") && err.contains("did you mean `message`?"),
            "{err}"
        );
        std::fs::write(&file, "steps:\n  - {name: a, kind: nop}\n").unwrap();
        let err = Pipeline::load_with(&file, &registry)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("(expected `bench`, `aggregate`, `plot` or `noop`)")
                && err.contains("did you mean `noop`?"),
            "{err}"
        );
    }
}
