// The GLB viewer, loaded on demand (a separate chunk): three.js with orbit controls and a
// neutral studio environment, so untextured meshes and PBR materials both read well.
import {
  ACESFilmicToneMapping,
  Box3,
  Color,
  DirectionalLight,
  HemisphereLight,
  PerspectiveCamera,
  PMREMGenerator,
  Scene,
  SRGBColorSpace,
  Vector3,
  WebGLRenderer,
} from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import { RoomEnvironment } from "three/examples/jsm/environments/RoomEnvironment.js";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";

export interface ViewerEvents {
  onLoad: (info: { triangles: number }) => void;
  onError: (message: string) => void;
}

export function mountViewer(host: HTMLElement, url: string, events: ViewerEvents): () => void {
  let renderer: WebGLRenderer;
  try {
    renderer = new WebGLRenderer({ antialias: true, alpha: true });
  } catch {
    events.onError("This browser cannot show 3D previews (WebGL is unavailable).");
    return () => undefined;
  }
  renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
  renderer.outputColorSpace = SRGBColorSpace;
  renderer.toneMapping = ACESFilmicToneMapping;
  host.appendChild(renderer.domElement);

  const scene = new Scene();
  const pmrem = new PMREMGenerator(renderer);
  scene.environment = pmrem.fromScene(new RoomEnvironment(), 0.04).texture;
  scene.add(new HemisphereLight(new Color("#ffffff"), new Color("#8890a0"), 0.6));
  const sun = new DirectionalLight(0xffffff, 1.2);
  sun.position.set(3, 5, 4);
  scene.add(sun);

  const camera = new PerspectiveCamera(40, 1, 0.01, 1000);
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.enableDamping = true;
  controls.autoRotate = true;
  controls.autoRotateSpeed = 1.2;
  renderer.domElement.addEventListener("pointerdown", () => (controls.autoRotate = false), { once: true });

  const resize = () => {
    const { clientWidth: w, clientHeight: h } = host;
    if (!w || !h) return;
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
  };
  const observer = new ResizeObserver(resize);
  observer.observe(host);
  resize();

  new GLTFLoader().load(
    url,
    (gltf) => {
      const box = new Box3().setFromObject(gltf.scene);
      const radius = box.getSize(new Vector3()).length() / 2 || 1;
      gltf.scene.position.sub(box.getCenter(new Vector3()));
      scene.add(gltf.scene);
      // Far enough that the bounding sphere fits the narrower of the two fields of view.
      const vertical = (camera.fov * Math.PI) / 360;
      const horizontal = Math.atan(Math.tan(vertical) * Math.max(camera.aspect, 0.1));
      const distance = (radius / Math.sin(Math.min(vertical, horizontal))) * 1.05;
      camera.near = distance / 100;
      camera.far = distance * 100;
      camera.position.copy(new Vector3(0.55, 0.4, 1).normalize().multiplyScalar(distance));
      camera.updateProjectionMatrix();
      controls.target.set(0, 0, 0);
      controls.update();
      let triangles = 0;
      gltf.scene.traverse((o) => {
        const geometry = (o as { geometry?: { index: { count: number } | null; attributes: { position?: { count: number } } } }).geometry;
        if (geometry) triangles += (geometry.index?.count ?? geometry.attributes.position?.count ?? 0) / 3;
      });
      events.onLoad({ triangles: Math.round(triangles) });
    },
    undefined,
    (err) => events.onError(`Could not load the model: ${err instanceof Error ? err.message : String(err)}`),
  );

  renderer.setAnimationLoop(() => {
    controls.update();
    renderer.render(scene, camera);
  });

  return () => {
    renderer.setAnimationLoop(null);
    observer.disconnect();
    controls.dispose();
    pmrem.dispose();
    renderer.dispose();
    renderer.domElement.remove();
  };
}
