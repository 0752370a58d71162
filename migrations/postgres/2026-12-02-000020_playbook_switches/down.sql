DROP TABLE playbook_switches;
