//! Loading playbooks and integrations from their folders. A broken file is refused whole,
//! with the file, line and reason; nothing is half-loaded.

use super::definition::Playbook;
use super::validate::{self, Catalog, Policy, Problem};
use crate::integrations::definition::Integration;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// A problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Every playbook and integration, validated.
#[derive(Debug, Clone, Default)]
pub struct Library {
    pub playbooks: BTreeMap<String, (Playbook, PathBuf)>,
    pub integrations: BTreeMap<String, Integration>,
}

/// Parses YAML into `T`, turning parser errors into a problem with the line.
fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, FileProblem> {
    serde_norway::from_str(text).map_err(|e| FileProblem {
        file: path.to_path_buf(),
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })
}

/// The YAML files in `dir`, sorted; a folder that does not exist holds none (a
/// deployment without playbooks), any other read error is a problem.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, FileProblem> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| FileProblem {
        file: dir.to_path_buf(),
        line: None,
        message: format!("cannot read the folder: {e}"),
    })?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    Ok(files)
}

fn read(path: &Path) -> Result<String, FileProblem> {
    std::fs::read_to_string(path).map_err(|e| FileProblem {
        file: path.to_path_buf(),
        line: None,
        message: format!("cannot read: {e}"),
    })
}

fn attach(path: &Path, problems: Vec<Problem>) -> Vec<FileProblem> {
    problems
        .into_iter()
        .map(|p| FileProblem {
            file: path.to_path_buf(),
            line: p.line,
            message: p.message,
        })
        .collect()
}

/// Parses and validates every integration in `dir`; an invalid or duplicate one is left
/// out and reported.
fn load_integrations(dir: &Path) -> (BTreeMap<String, Integration>, Vec<FileProblem>) {
    let mut problems = Vec::new();
    let mut integrations = BTreeMap::new();
    let files = match yaml_files(dir) {
        Ok(files) => files,
        Err(p) => return (integrations, vec![p]),
    };
    for path in files {
        let loaded =
            read(&path).and_then(|text| parse::<Integration>(&path, &text).map(|i| (i, text)));
        match loaded {
            Err(p) => problems.push(p),
            Ok((integration, text)) => {
                let found = attach(&path, validate::integration(&integration, &text));
                if !found.is_empty() {
                    problems.extend(found);
                } else if integrations.contains_key(&integration.id) {
                    problems.push(FileProblem {
                        file: path.clone(),
                        line: Some(1),
                        message: format!(
                            "integration id {:?} is already defined by another file",
                            integration.id
                        ),
                    });
                } else {
                    integrations.insert(integration.id.clone(), integration);
                }
            }
        }
    }
    (integrations, problems)
}

/// Loads every integration in `integrations_dir` and playbook in `playbooks_dir`.
/// Returns the library, or every problem found (in all files, not just the first).
pub fn load(
    playbooks_dir: &Path,
    integrations_dir: &Path,
    policy: Policy,
) -> Result<Library, Vec<FileProblem>> {
    let (integrations, mut problems) = load_integrations(integrations_dir);
    let mut library = Library {
        integrations,
        ..Library::default()
    };
    let mut parsed = Vec::new();
    match yaml_files(playbooks_dir) {
        Ok(files) => {
            for path in files {
                match read(&path)
                    .and_then(|text| parse::<Playbook>(&path, &text).map(|p| (p, text)))
                {
                    Ok((pb, text)) => parsed.push((path, pb, text)),
                    Err(p) => problems.push(p),
                }
            }
        }
        Err(p) => problems.push(p),
    }
    let ids: BTreeSet<String> = parsed.iter().map(|(_, pb, _)| pb.id.clone()).collect();
    let catalog = Catalog {
        integrations: &library.integrations,
        playbook_ids: &ids,
        policy,
    };
    let mut accepted = Vec::new();
    for (path, pb, text) in parsed {
        let found = attach(&path, validate::playbook(&pb, &text, &catalog));
        if found.is_empty() {
            accepted.push((path, pb));
        } else {
            problems.extend(found);
        }
    }
    for (path, pb) in accepted {
        if library.playbooks.contains_key(&pb.id) {
            problems.push(FileProblem {
                file: path,
                line: Some(1),
                message: format!("playbook id {:?} is already defined by another file", pb.id),
            });
        } else {
            library.playbooks.insert(pb.id.clone(), (pb, path));
        }
    }
    if problems.is_empty() {
        Ok(library)
    } else {
        Err(problems)
    }
}

/// Validates one playbook file against the integrations in `integrations_dir` and the
/// playbook ids in `playbooks_dir` (for `playbook.run`).
pub fn check_file(
    path: &Path,
    playbooks_dir: &Path,
    integrations_dir: &Path,
    policy: Policy,
) -> Vec<FileProblem> {
    let (integrations, mut problems) = load_integrations(integrations_dir);
    let mut ids = BTreeSet::new();
    if let Ok(files) = yaml_files(playbooks_dir) {
        for file in files {
            if let Ok(pb) = read(&file).and_then(|text| parse::<Playbook>(&file, &text)) {
                ids.insert(pb.id);
            }
        }
    }
    let text = match read(path) {
        Ok(t) => t,
        Err(p) => return vec![p],
    };
    match parse::<Playbook>(path, &text) {
        Err(p) => problems.push(p),
        Ok(pb) => {
            ids.insert(pb.id.clone());
            let catalog = Catalog {
                integrations: &integrations,
                playbook_ids: &ids,
                policy,
            };
            problems.extend(attach(path, validate::playbook(&pb, &text, &catalog)));
        }
    }
    problems
}

/// One definition file as it is on disk now, with what the validator says of it.
#[derive(Debug, Clone)]
pub struct FileStatus {
    pub file: PathBuf,
    /// The id it declares, when it parses far enough to have one.
    pub id: Option<String>,
    /// The file's text (empty when it could not be read).
    pub text: String,
    /// Every problem the validator finds; none means valid.
    pub problems: Vec<FileProblem>,
}

/// Every playbook and integration file on disk now, each validated on its own (the
/// console's view; unlike [`load`] a broken file does not hide the others).
#[derive(Debug, Clone, Default)]
pub struct Survey {
    pub playbooks: Vec<FileStatus>,
    pub integrations: Vec<FileStatus>,
}

impl Survey {
    /// The playbook file declaring `id`.
    pub fn playbook(&self, id: &str) -> Option<&FileStatus> {
        self.playbooks.iter().find(|f| f.id.as_deref() == Some(id))
    }

    /// The integration file declaring `id`.
    pub fn integration(&self, id: &str) -> Option<&FileStatus> {
        self.integrations
            .iter()
            .find(|f| f.id.as_deref() == Some(id))
    }
}

/// Reads and validates every file in both folders, as `tocsin playbook validate` would.
pub fn survey(playbooks_dir: &Path, integrations_dir: &Path, policy: Policy) -> Survey {
    let (valid, _) = load_integrations(integrations_dir);
    let mut out = Survey::default();
    for path in yaml_files(integrations_dir).unwrap_or_default() {
        let read = read(&path);
        let text = read.clone().unwrap_or_default();
        let (id, problems) = match read.and_then(|t| parse::<Integration>(&path, &t)) {
            Err(p) => (None, vec![p]),
            Ok(i) => {
                let problems = attach(&path, validate::integration(&i, &text));
                (Some(i.id), problems)
            }
        };
        out.integrations.push(FileStatus {
            file: path,
            id,
            text,
            problems,
        });
    }
    let mut parsed = Vec::new();
    for path in yaml_files(playbooks_dir).unwrap_or_default() {
        let read = read(&path);
        let text = read.clone().unwrap_or_default();
        let pb = read.and_then(|t| parse::<Playbook>(&path, &t));
        parsed.push((path, text, pb));
    }
    let ids: BTreeSet<String> = parsed
        .iter()
        .filter_map(|(_, _, pb)| pb.as_ref().ok().map(|p| p.id.clone()))
        .collect();
    let catalog = Catalog {
        integrations: &valid,
        playbook_ids: &ids,
        policy,
    };
    for (path, text, pb) in parsed {
        let (id, problems) = match pb {
            Err(p) => (None, vec![p]),
            Ok(pb) => {
                let problems = attach(&path, validate::playbook(&pb, &text, &catalog));
                (Some(pb.id), problems)
            }
        };
        out.playbooks.push(FileStatus {
            file: path,
            id,
            text,
            problems,
        });
    }
    out
}
