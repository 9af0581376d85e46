"""Built-in 3D engines, all CPU and offline, all writing GLB.

``hull`` carves multiview silhouettes (``visual-hull-3d``), ``inflate`` inflates one picture's
silhouette (``inflate-3d``), and ``primitives`` composes simple shapes from a prompt's words
(``primitive-3d``). Each module has its own ``create`` factory; the registry loads one only
when its engine is first used.
"""
