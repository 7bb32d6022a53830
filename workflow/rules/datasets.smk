# Categories drawn from datasets (texts: {category: {dataset: ..., n: ...}}; docs/configuration.md,
# "Categories from datasets"; sae_specialists.extraction.datasets). Each is materialised once into
# a Parquet category file with its provenance; the spec is the job's param, so the same spec
# never reruns it (the file is read, never the network) and a changed spec re-materialises that
# category, whose extraction jobs then rerun (the other categories' do not); so does a change
# of a local dataset's files (inputs, and their content digests as a param).
from sae_specialists.extraction.datasets import local_files


rule materialise_dataset:
    input:
        # a local dataset's files (none for a hub dataset): editing one re-materialises
        lambda w: local_files(DATASETS[w.category]),
    output:
        texts=L.dataset_texts("{category}"),
    log:
        L.log("extract", "dataset_category={category}"),
    wildcard_constraints:
        category="|".join(DATASETS) or "(?!)",
    conda:
        "../envs/sae_specialists.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        spec=lambda w: DATASETS[w.category].as_param(),
        text_field=S.extraction.text_field,
        content=lambda w: local_content(
            (), None, local_files(DATASETS[w.category]), model=False
        ),
    script:
        "../../scripts/extract_dataset.py"


rule dataset_provenance:
    input:
        texts=[L.dataset_texts(c) for c in DATASETS],
    output:
        page=L.dataset_provenance,
    log:
        L.log("extract", "dataset_provenance"),
    conda:
        "../envs/sae_specialists.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../../scripts/extract_provenance.py"
